/* The memory hog and helpers for bench/watch.sh (issue 4's side-by-side benchmark with earlyoom).
 *
 *   hog run RECORD RATE_MIBS CAP_MIB WATCH THRESHOLD_KIB CGROUP_PROCS
 *       Forks the hog and waits for it. The hog moves itself into CGROUP_PROCS (a v1 memory
 *       cgroup with a limit just above CAP_MIB), sets its oom_score_adj to 1000, then takes fresh
 *       anonymous memory 1 MiB at a time (one byte written per 4 KiB page), RATE_MIBS MiB per
 *       second (0 = as fast as one thread can), at most CAP_MIB MiB; then it holds for 5 s and
 *       exits 0. After each MiB it appends (CLOCK_MONOTONIC ns, MiB, reading in KiB) to RECORD, a
 *       file mapped MAP_SHARED, so the record survives its death. The reading is MemAvailable
 *       (WATCH = "mem"; crossing = first reading below THRESHOLD_KIB) or a cgroup's
 *       memory.usage_in_bytes (WATCH = that file; crossing = first reading above THRESHOLD_KIB).
 *       A SIGTERM handler records the delivery time and the MiB reached, then dies of SIGTERM.
 *       The parent (oom_score_adj -1000, so neither tool chooses it) records when waitid()
 *       returns: the hog's reaping.
 *   hog idle N      Forks N children that pause(); prints "ready" when all exist; pauses.
 *   hog fill MIB [huge]
 *       Measures the fastest single-thread fill rate: touches MIB MiB of fresh anonymous memory
 *       in 1 MiB steps with no pause (with MADV_HUGEPAGE when "huge"), prints MiB/s overall and
 *       the best 64 MiB window. For docs/triggers.md.
 *
 * Build: gcc -O2 -o bench/out/hog bench/hog.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1L << 20)
#define MAX_STEPS 4096

struct step {
	int64_t t_ns, mib, value_kib;
};

struct record {
	int64_t magic; /* 0x686f67 */
	int64_t pid;
	int64_t start_ns;
	int64_t threshold_kib;
	int64_t watch_mem; /* 1: MemAvailable, 0: cgroup usage */
	int64_t rate_mibs;
	int64_t sig_ns; /* SIGTERM delivery, 0 if none */
	int64_t sig_mib;
	int64_t reap_ns; /* waitid() returned */
	int64_t wstatus;
	int64_t nsteps;
	int64_t done_ns; /* cap reached (no signal came) */
	struct step steps[MAX_STEPS];
};

static struct record *rec;
static volatile int64_t cur_mib;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_term(int sig)
{
	rec->sig_ns = now_ns();
	rec->sig_mib = cur_mib;
	signal(sig, SIG_DFL);
	raise(sig);
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* One reading in KiB: MemAvailable, or a cgroup usage file (bytes) / 1024. */
static int64_t read_value(int fd, int mem)
{
	char buf[4096];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	if (!mem)
		return strtoll(buf, NULL, 10) / 1024;
	char *p = strstr(buf, "MemAvailable:");
	return p ? strtoll(p + 13, NULL, 10) : -1;
}

static void hog(long rate, long cap, const char *watch, long threshold, const char *procs)
{
	/* Safety first: the limited cgroup, then the kernel's and the tools' first choice. */
	if (write_file(procs, "0") != 0) {
		perror("hog: joining the memory cgroup");
		_exit(90);
	}
	if (write_file("/proc/self/oom_score_adj", "1000") != 0) {
		perror("hog: oom_score_adj");
		_exit(91);
	}
	prctl(PR_SET_NAME, "hog", 0, 0, 0);
	int mem = strcmp(watch, "mem") == 0;
	int fd = open(mem ? "/proc/meminfo" : watch, O_RDONLY);
	if (fd < 0) {
		perror(watch);
		_exit(92);
	}
	char *base = mmap(NULL, cap * MIB, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		perror("hog: mmap");
		_exit(93);
	}
	signal(SIGTERM, on_term);
	rec->threshold_kib = threshold;
	rec->watch_mem = mem;
	rec->rate_mibs = rate;
	int64_t t0 = now_ns();
	rec->start_ns = t0;
	rec->steps[0] = (struct step){t0, 0, read_value(fd, mem)};
	rec->nsteps = 1;
	for (long i = 1; i <= cap && i < MAX_STEPS; i++) {
		char *p = base + (i - 1) * MIB;
		for (long off = 0; off < MIB; off += 4096)
			p[off] = 1;
		cur_mib = i;
		int64_t t = now_ns();
		rec->steps[i] = (struct step){t, i, read_value(fd, mem)};
		rec->nsteps = i + 1;
		if (rate > 0) {
			int64_t due = t0 + (int64_t)((double)i * 1e9 / (double)rate);
			struct timespec ts = {due / 1000000000, due % 1000000000};
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
				;
		}
	}
	rec->done_ns = now_ns();
	sleep(5);
	_exit(0);
}

static int cmd_run(int argc, char **argv)
{
	if (argc != 8) {
		fprintf(stderr, "usage: hog run RECORD RATE_MIBS CAP_MIB WATCH THRESHOLD_KIB CGROUP_PROCS\n");
		return 2;
	}
	long rate = atol(argv[3]), cap = atol(argv[4]), threshold = atol(argv[6]);
	if (cap <= 0 || cap > 3072) {
		fprintf(stderr, "hog: cap %ld MiB outside 1..3072\n", cap);
		return 2;
	}
	int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, sizeof(struct record)) != 0) {
		perror(argv[2]);
		return 2;
	}
	rec = mmap(NULL, sizeof(struct record), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (rec == MAP_FAILED) {
		perror("mmap record");
		return 2;
	}
	rec->magic = 0x686f67;
	/* The runner must never be a victim: neither tool picks oom_score_adj -1000. */
	write_file("/proc/self/oom_score_adj", "-1000");
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0)
		hog(rate, cap, argv[5], threshold, argv[7]);
	rec->pid = pid;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	while (waitid(P_PID, pid, &si, WEXITED) != 0 && errno == EINTR)
		;
	rec->reap_ns = now_ns();
	rec->wstatus = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
	msync(rec, sizeof(struct record), MS_SYNC);
	return 0;
}

static int cmd_idle(int argc, char **argv)
{
	long n = argc > 2 ? atol(argv[2]) : 0;
	for (long i = 0; i < n; i++) {
		pid_t p = fork();
		if (p < 0) {
			perror("idle: fork");
			return 1;
		}
		if (p == 0) {
			prctl(PR_SET_NAME, "idle", 0, 0, 0);
			for (;;)
				pause();
		}
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}

static int cmd_fill(int argc, char **argv)
{
	long mib = argc > 2 ? atol(argv[2]) : 1024;
	int huge = argc > 3 && strcmp(argv[3], "huge") == 0;
	if (mib <= 0 || mib > 2048)
		return 2;
	write_file("/proc/self/oom_score_adj", "1000");
	char *base = mmap(NULL, mib * MIB, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return 2;
	if (huge)
		madvise(base, mib * MIB, MADV_HUGEPAGE);
	int64_t *t = calloc(mib + 1, sizeof *t);
	t[0] = now_ns();
	for (long i = 0; i < mib; i++) {
		char *p = base + i * MIB;
		for (long off = 0; off < MIB; off += 4096)
			p[off] = 1;
		t[i + 1] = now_ns();
	}
	double total = (double)(t[mib] - t[0]) / 1e9;
	double best = 0;
	for (long i = 64; i <= mib; i++) {
		double r = 64.0 / ((double)(t[i] - t[i - 64]) / 1e9);
		if (r > best)
			best = r;
	}
	printf("%s %ld MiB in %.1f ms: %.0f MiB/s overall, best 64 MiB window %.0f MiB/s\n",
	       huge ? "MADV_HUGEPAGE" : "4 KiB pages", mib, total * 1e3, mib / total, best);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "run") == 0)
		return cmd_run(argc, argv);
	if (argc > 1 && strcmp(argv[1], "idle") == 0)
		return cmd_idle(argc, argv);
	if (argc > 1 && strcmp(argv[1], "fill") == 0)
		return cmd_fill(argc, argv);
	fprintf(stderr, "usage: hog run|idle|fill ...\n");
	return 2;
}
