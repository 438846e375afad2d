/*
 * osu_cpu.h - CPU time spent over a benchmark's timed loop (osu_bw -C).
 *
 * Each rank takes getrusage(RUSAGE_SELF) (user + system, every thread of the
 * process, so a provider's progress thread counts) at the start and the end
 * of the timed loop; rank 0 also reads the whole machine's busy time from
 * the first line of /proc/stat over the same window, because time the kernel
 * spends in interrupts and softirqs (network receive, for one) is charged to
 * whichever task a tick lands in, or to no rank at all: with
 * CONFIG_IRQ_TIME_ACCOUNTING unset it stays inside the interrupted task's
 * system time, with it set it is counted apart as irq/softirq.
 *
 * osu_cpu_report() sums both ranks on rank 0 and prints one comment line
 * after the size's row, so parsers of OSU's format read the rows unchanged:
 *
 *   # cpu size=1048576 bytes=1342177280 wall_s=0.3012 rank0_s=0.2950
 *     rank1_s=0.2990 machine_busy_s=0.6010 machine_irq_s=0.0400
 *
 * (one line; machine_* are -1 where /proc/stat cannot be read).
 */
#ifndef OSU_CPU_H
#define OSU_CPU_H

#include <stddef.h>

/* The machine's CPU time from /proc/stat, in seconds over all CPUs. */
struct osu_machine_time {
	double busy;	/* every state but idle, iowait and steal */
	double irq;	/* irq + softirq, also counted in busy */
	int valid;
};

struct osu_cpu_mark {
	double wall;			/* MPI_Wtime() */
	double self;			/* this process: user + system, s */
	struct osu_machine_time machine;
};

/* Takes a mark (getrusage, /proc/stat, MPI_Wtime). */
void osu_cpu_mark(struct osu_cpu_mark *mark);

/*
 * Collective: gathers both ranks' CPU seconds between start and end to rank
 * 0, which prints the '# cpu' line for size, bytes moved in the timed loop.
 */
void osu_cpu_report(int rank, size_t size, double bytes,
		    const struct osu_cpu_mark *start,
		    const struct osu_cpu_mark *end);

#endif
