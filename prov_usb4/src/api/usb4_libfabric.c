/*
 * The libfabric that loaded us, whichever it is.
 *
 * One provider binary, built against the oldest headers we support (1.17),
 * serves every libfabric from 1.17 to the newest 2.x:
 *
 *   - API version.  A consumer built on libfabric 2.x asks for API 2.x and
 *     libfabric skips a provider whose fi_version is older.  We report the
 *     running library's fi_version(): the provider interface (fi_prov_ini,
 *     struct fi_provider, the attribute structs) only grows at the end, so
 *     fields we know keep their place in every later layout.
 *   - fi_info layout.  libfabric versions its fi_dupinfo/fi_freeinfo
 *     symbols by struct layout.  Linked against 1.17 we would bind to
 *     FABRIC_1.3, which libfabric 2.x keeps only as a compatibility entry
 *     that allocates the old, shorter structs; the core would then read the
 *     infos we return past their end.  So the infos we hand to libfabric are
 *     made and freed by the running library's current (default) entries,
 *     looked up in the library our fi_version reference was bound to.
 *     tests/test_libfabric_abi.py checks that the provider imports neither
 *     symbol, and that the struct prefixes we use are the same in 2.x.
 */
#include <dlfcn.h>

#include "usb4_api.h"

typedef struct fi_info *(*usb4_dupinfo_fn)(const struct fi_info *info);
typedef void (*usb4_freeinfo_fn)(struct fi_info *info);

static usb4_dupinfo_fn usb4_dupinfo_entry;
static usb4_freeinfo_fn usb4_freeinfo_entry;

/* The current fi_dupinfo and fi_freeinfo of the library holding fn. */
static bool find_info_entries(void *fn)
{
	Dl_info where;
	void *lib;

	if (!dladdr(fn, &where) || !where.dli_fname)
		return false;
	lib = dlopen(where.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
	if (!lib)
		return false;
	/* dlsym gives the default version: the running library's layout. */
	usb4_dupinfo_entry = (usb4_dupinfo_fn) dlsym(lib, "fi_dupinfo");
	usb4_freeinfo_entry = (usb4_freeinfo_fn) dlsym(lib, "fi_freeinfo");
	/* The library stays loaded: it is the one calling us. */
	dlclose(lib);
	return usb4_dupinfo_entry && usb4_freeinfo_entry;
}

int usb4_libfabric_init(void)
{
	uint32_t running = fi_version();

	if (FI_VERSION_LT(running, USB4_API_BUILT)) {
		USB4_WARN(FI_LOG_CORE, "libfabric %u.%u is older than the %u.%u "
			  "headers usb4 was built with: not loaded\n",
			  FI_MAJOR(running), FI_MINOR(running),
			  FI_MAJOR(USB4_API_BUILT), FI_MINOR(USB4_API_BUILT));
		return -FI_ENOSYS;
	}
	if (!find_info_entries((void *) fi_version)) {
		USB4_WARN(FI_LOG_CORE, "cannot find the fi_dupinfo/fi_freeinfo "
			  "of the running libfabric %u.%u: not loaded\n",
			  FI_MAJOR(running), FI_MINOR(running));
		return -FI_ENOSYS;
	}
	usb4_prov.fi_version = running;
	USB4_INFO(FI_LOG_CORE, "serving libfabric API %u.%u (built with %u.%u "
		  "headers)\n", FI_MAJOR(running), FI_MINOR(running),
		  FI_MAJOR(USB4_API_BUILT), FI_MINOR(USB4_API_BUILT));
	return 0;
}

uint32_t usb4_api_version(void)
{
	return usb4_prov.fi_version;
}

struct fi_info *usb4_allocinfo(void)
{
	/* Programs that link the layers without libfabric's loader. */
	if (!usb4_dupinfo_entry && !find_info_entries((void *) fi_version))
		return NULL;
	return usb4_dupinfo_entry(NULL);
}

void usb4_freeinfo(struct fi_info *info)
{
	usb4_freeinfo_entry(info);
}
