/*
 * failmalloc: an LD_PRELOAD library that makes the provider's own heap
 * allocations fail, to test its out-of-memory paths through the public API.
 *
 *   gcc -shared -fPIC -O2 -o failmalloc.so tests/c/failmalloc.c -ldl
 *   LD_PRELOAD=./failmalloc.so FAILMALLOC_SEED=3 ./program
 *
 * malloc, calloc and realloc are interposed (the provider uses no other
 * allocator: `nm -D --undefined-only libusb4-fi.so`; its strdup allocates
 * from inside libc and is never failed).  A call fails (NULL, errno ENOMEM)
 * only when
 *   - the program armed failures: failmalloc_arm(rate), looked up with
 *     dlsym(RTLD_DEFAULT, "failmalloc_arm") after its set-up, so opening the
 *     fabric, domain, endpoints, AV, CQ and MRs is never disturbed; and
 *   - the immediate caller, __builtin_return_address(0), lies in an
 *     executable segment of the provider's shared object (FAILMALLOC_LIB,
 *     default libusb4-fi.so), found with dl_iterate_phdr; and
 *   - a pseudo-random draw (FAILMALLOC_SEED, default 1) falls below rate.
 * The program's own allocations, libc's and libfabric's never fail.
 *
 * libfabric dlopens the provider after this library's constructor ran, so
 * the provider's range is looked up when failures are armed and again, now
 * and then, while it is still unknown.
 *
 * dlsym(RTLD_NEXT, ...) may itself call calloc before the real allocator is
 * known: such calls are served from a small static arena, whose blocks free()
 * ignores and realloc() moves to the real heap.
 *
 * Counters for the program: failmalloc_seen() (provider allocations while
 * armed), failmalloc_failed() (of which failed), failmalloc_report(FILE *)
 * (the totals and each failing call site as an offset into the provider:
 * the call instruction's last byte, for addr2line -e libusb4-fi.so).
 * FAILMALLOC_ONLY=0x8416,0x7031 limits failures to those call sites (the
 * offsets failmalloc_report prints), to pin a failure on one of them.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FM_EXPORT		__attribute__((visibility("default")))
#define FM_DEFAULT_LIB		"libusb4-fi.so"
#define FM_SEGMENTS_MAX		8
#define FM_SITES_MAX		64
#define FM_ONLY_MAX		16
#define FM_RESCAN_EVERY		4096	/* provider allocations between looks */
#define FM_ARENA_BYTES		(64 * 1024)
#define FM_ARENA_ALIGN		16

/* ---- the real allocator, and the arena that serves dlsym's own calls ---- */

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);

static _Alignas(FM_ARENA_ALIGN) char arena[FM_ARENA_BYTES];
static atomic_size_t arena_used;
static atomic_int resolving;	/* 0 not yet, 1 in progress, 2 done */

/* Arena blocks carry their size in the FM_ARENA_ALIGN bytes before them. */
static void *arena_alloc(size_t size)
{
	size_t need = FM_ARENA_ALIGN +
		      ((size + FM_ARENA_ALIGN - 1) & ~(size_t) (FM_ARENA_ALIGN - 1));
	size_t at = atomic_fetch_add(&arena_used, need);

	if (at + need > sizeof(arena)) {
		errno = ENOMEM;
		return NULL;	/* only dlsym's few bytes ever come here */
	}
	memcpy(arena + at, &size, sizeof(size));
	return arena + at + FM_ARENA_ALIGN;	/* static storage: zeroed */
}

static bool in_arena(const void *p)
{
	return (const char *) p >= arena && (const char *) p < arena + sizeof(arena);
}

static size_t arena_size(const void *p)
{
	size_t size;

	memcpy(&size, (const char *) p - FM_ARENA_ALIGN, sizeof(size));
	return size;
}

/* Looks the real functions up once; true when they are usable. */
static bool resolve(void)
{
	int expect = 0;

	if (atomic_load(&resolving) == 2)
		return true;
	if (!atomic_compare_exchange_strong(&resolving, &expect, 1))
		return atomic_load(&resolving) == 2;	/* dlsym re-entered us */
	real_malloc = dlsym(RTLD_NEXT, "malloc");
	real_calloc = dlsym(RTLD_NEXT, "calloc");
	real_realloc = dlsym(RTLD_NEXT, "realloc");
	real_free = dlsym(RTLD_NEXT, "free");
	if (!real_malloc || !real_calloc || !real_realloc || !real_free) {
		static const char msg[] = "failmalloc: no real allocator\n";
		fwrite(msg, 1, sizeof(msg) - 1, stderr);
		abort();
	}
	atomic_store(&resolving, 2);
	return true;
}

/* ---- where the provider lives ---- */

struct segment {
	uintptr_t start, end;
};

static struct segment segments[FM_SEGMENTS_MAX];
static atomic_int segment_count;	/* published after the segments */
static uintptr_t provider_base;
static const char *provider_name = FM_DEFAULT_LIB;

static bool name_matches(const char *path)
{
	const char *base = path ? strrchr(path, '/') : NULL;

	base = base ? base + 1 : path;
	return base && !strcmp(base, provider_name);
}

static int scan_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	int *found = arg;
	int n = 0;

	(void) size;
	if (!name_matches(info->dlpi_name))
		return 0;
	for (int i = 0; i < info->dlpi_phnum && n < FM_SEGMENTS_MAX; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		segments[n].start = info->dlpi_addr + ph->p_vaddr;
		segments[n].end = segments[n].start + ph->p_memsz;
		n++;
	}
	provider_base = info->dlpi_addr;
	*found = n;
	return 1;
}

/* Finds the provider's executable segments; true once they are known. */
static bool scan_provider(void)
{
	int found = 0;

	if (atomic_load_explicit(&segment_count, memory_order_acquire))
		return true;
	dl_iterate_phdr(scan_object, &found);
	if (found)
		atomic_store_explicit(&segment_count, found,
				      memory_order_release);
	return found > 0;
}

static bool in_provider(uintptr_t pc)
{
	int n = atomic_load_explicit(&segment_count, memory_order_acquire);

	for (int i = 0; i < n; i++)
		if (pc >= segments[i].start && pc < segments[i].end)
			return true;
	return false;
}

/* ---- the decision ---- */

static _Atomic double fail_rate;
static atomic_bool armed;
static atomic_uint_fast64_t draws;	/* splitmix64 counter */
static atomic_ulong seen, failed, unscanned;

struct site {
	atomic_uintptr_t pc;
	atomic_ulong count;
};

static struct site sites[FM_SITES_MAX];
static uintptr_t only[FM_ONLY_MAX];	/* FAILMALLOC_ONLY, set when arming */
static int only_count;

/* Whether FAILMALLOC_ONLY lets the call site at pc fail. */
static bool site_allowed(uintptr_t pc)
{
	if (!only_count)
		return true;
	for (int i = 0; i < only_count; i++)
		if (pc - 1 - provider_base == only[i])
			return true;
	return false;
}

static void parse_only(const char *list)
{
	char *end;

	only_count = 0;
	while (list && *list && only_count < FM_ONLY_MAX) {
		only[only_count++] = (uintptr_t) strtoull(list, &end, 16);
		list = *end == ',' ? end + 1 : NULL;
	}
}

static double draw(void)
{
	uint64_t z = atomic_fetch_add(&draws, 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double) (z >> 11) / (double) (1ull << 53);
}

static void note_site(uintptr_t pc)
{
	for (int i = 0; i < FM_SITES_MAX; i++) {
		uintptr_t have = atomic_load(&sites[i].pc);
		if (!have && atomic_compare_exchange_strong(&sites[i].pc, &have,
							    pc))
			have = pc;
		if (have == pc) {
			atomic_fetch_add(&sites[i].count, 1);
			return;
		}
	}
}

/* Whether the allocation called from pc fails. */
static bool should_fail(uintptr_t pc)
{
	if (!atomic_load_explicit(&armed, memory_order_relaxed))
		return false;
	if (!atomic_load_explicit(&segment_count, memory_order_acquire) &&
	    atomic_fetch_add(&unscanned, 1) % FM_RESCAN_EVERY == 0)
		scan_provider();
	if (!in_provider(pc))
		return false;
	atomic_fetch_add(&seen, 1);
	if (atomic_load(&fail_rate) <= 0 || !site_allowed(pc) ||
	    draw() >= atomic_load(&fail_rate))
		return false;
	atomic_fetch_add(&failed, 1);
	note_site(pc);
	return true;
}

/* ---- the interposed allocator ---- */

FM_EXPORT void *malloc(size_t size)
{
	if (atomic_load(&resolving) != 2 && !resolve())
		return arena_alloc(size);
	if (should_fail((uintptr_t) __builtin_return_address(0))) {
		errno = ENOMEM;
		return NULL;
	}
	return real_malloc(size);
}

FM_EXPORT void *calloc(size_t n, size_t size)
{
	if (atomic_load(&resolving) != 2 && !resolve()) {
		if (size && n > SIZE_MAX / size) {
			errno = ENOMEM;
			return NULL;
		}
		return arena_alloc(n * size);
	}
	if (should_fail((uintptr_t) __builtin_return_address(0))) {
		errno = ENOMEM;
		return NULL;
	}
	return real_calloc(n, size);
}

FM_EXPORT void *realloc(void *p, size_t size)
{
	if (atomic_load(&resolving) != 2 && !resolve()) {
		void *q = arena_alloc(size);
		if (q && p)
			memcpy(q, p, arena_size(p) < size ? arena_size(p) : size);
		return q;
	}
	if (should_fail((uintptr_t) __builtin_return_address(0))) {
		errno = ENOMEM;
		return NULL;	/* p stays valid, as with a real failure */
	}
	if (p && in_arena(p)) {
		void *q = real_malloc(size);
		if (q)
			memcpy(q, p, arena_size(p) < size ? arena_size(p) : size);
		return q;
	}
	return real_realloc(p, size);
}

FM_EXPORT void free(void *p)
{
	if (!p || in_arena(p))
		return;
	if (atomic_load(&resolving) != 2 && !resolve())
		return;		/* cannot happen: only the arena was in use */
	real_free(p);
}

/* ---- what the program calls ---- */

/*
 * Starts failing the provider's allocations with probability rate (with 0
 * they are only counted).  Returns 0, or -1 when the provider is not loaded (nothing could
 * ever fail: the caller's test would prove nothing).
 */
FM_EXPORT int failmalloc_arm(double rate)
{
	const char *seed = getenv("FAILMALLOC_SEED");
	const char *lib = getenv("FAILMALLOC_LIB");

	if (lib && *lib)
		provider_name = lib;
	atomic_store(&armed, false);
	parse_only(getenv("FAILMALLOC_ONLY"));
	atomic_store(&draws, (seed ? strtoull(seed, NULL, 0) : 1) *
			     0xd1b54a32d192ed03ull);
	atomic_store(&fail_rate, rate);
	atomic_store(&armed, true);	/* rate 0: count, never fail */
	return scan_provider() ? 0 : -1;
}

FM_EXPORT void failmalloc_disarm(void)
{
	atomic_store(&armed, false);
}

FM_EXPORT unsigned long failmalloc_seen(void)
{
	return atomic_load(&seen);
}

FM_EXPORT unsigned long failmalloc_failed(void)
{
	return atomic_load(&failed);
}

FM_EXPORT void failmalloc_report(FILE *out)
{
	fprintf(out, "failmalloc: %lu provider allocations while armed, "
		"%lu failed\n", failmalloc_seen(), failmalloc_failed());
	for (int i = 0; i < FM_SITES_MAX && atomic_load(&sites[i].pc); i++)
		fprintf(out, "failmalloc:   %lu failed at %s+0x%lx\n",
			(unsigned long) atomic_load(&sites[i].count),
			provider_name,
			(unsigned long) (atomic_load(&sites[i].pc) - 1 -
					 provider_base));
}

__attribute__((constructor)) static void failmalloc_init(void)
{
	resolve();
}
