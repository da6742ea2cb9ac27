// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * sva-fuzz: a bounded randomized fuzzer of /dev/sva (sva_shim.ko), run inside
 * the test VM (tests/vm/run-vm.sh packs it as /sva-fuzz). Linked statically.
 *
 *   sva-fuzz [-d seconds] [-s seed] [-t threads] [-i percent] [-f] [-r case]
 *            [-v]
 *
 * Device threads issue every ioctl of the UAPI (ABI 2; and invalid command
 * numbers) with random sizes and pointers, on /dev/sva files of their own
 * (opened, or made by SVA_SHIM_IOC_CONTEXT) and on files shared between
 * threads, plus read()/poll()/close(). mm threads munmap, mmap,
 * mprotect, madvise, mremap, fork, truncate and touch an arena of slots those
 * device accesses point into. What can be checked is:
 *  - every ioctl returns 0 or an errno from the set expected for it, and an
 *    exact one where the input decides (EINVAL for a malformed request,
 *    ENOTCONN on an unbound file, EPERM in a forked child, ...);
 *  - a successful ioctl's output is consistent (status, bytes_done,
 *    fault_addr, snapshot states, event records, monotonic stats and
 *    mirror sequences);
 *  - on each device thread's "stable" regions, which nothing else touches,
 *    every device read returns exactly what the CPU wrote, every device
 *    write is exactly what the CPU reads back, and protection changes,
 *    DONTNEED and munmap+mmap are seen by the device at once;
 *  - after DONTNEED of a mirrored range, its sequence has advanced and
 *    INVALIDATE records cover it, unless a LOST record says some were
 *    dropped; one PASID per process; the module's limits give -ENOSPC and
 *    -EMFILE (checked once all is closed);
 *  - nothing hangs (a watchdog dumps the stuck threads' kernel stacks), and
 *    the module's live_objects counter returns to 0 once everything closed.
 * Under -i (the shim's injection knobs; the harness adds failslab and
 * fail_function on this task) any system call of the fuzzer may fail with
 * ENOMEM/EAGAIN and a uaccess with EFAULT: such failures are tolerated (the
 * op skipped, set-up retried) while wrong data and impossible errnos are
 * still flagged.
 * The kernel's own checkers (KASAN, lockdep, kmemleak on the debug kernel)
 * and the console grep of the harness catch the rest.
 *
 * Each thread draws from its own generator seeded from (seed, thread), so a
 * run is reproducible per seed as far as thread interleaving allows; the
 * seed is printed first. Exit status: 0 clean, 1 unexpected results, 2 hang.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uapi/linux/sva_shim.h"

/* Debian 12's 6.1 headers and glibc may lack these. */
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define PAGE 4096ul
#define HUGE (2ul << 20)
#define NSLOTS 16			/* arena slots the mm threads churn */
#define SLOT (4ul << 20)
#define GUARD HUGE			/* PROT_NONE around the arena */
#define NSFD 4				/* /dev/sva files shared by threads */
#define NPFD 2				/* per device thread */
#define MAXM 32				/* mirrors tracked per file */
#define SCRATCH (64ul << 10)		/* per thread, guard page after */
#define RINGMEM (64ul << 10)		/* per thread: op_ring's rings */
#define NSTABLE 4
#define MAXTHREADS 32
#define EV_SIZE sizeof(struct sva_shim_event)
#define PASID_MAX (1u << 20)

/* ----------------------------------------------------------- options */

static unsigned int opt_secs = 60;
static uint64_t opt_seed;
static int opt_threads = 4;
static unsigned int opt_inject;		/* percent, 0: no fault injection */
static bool opt_fail_self;		/* -f: set our make-it-fail once set up */
static int opt_verbose;
static const char *opt_repro;

/* -------------------------------------------------------- accounting */

enum cmd {
	C_VERSION, C_BIND, C_UNBIND, C_READ, C_WRITE, C_SNAPSHOT, C_MIRROR,
	C_UNMIRROR, C_MIRROR_SEQ, C_STATS, C_INVALID, C_EVREAD, C_POLL,
	C_OPEN, C_CLOSE, C_REPLACE, C_STABLE, C_CONTEXT, C_LIMITS,
	C_RING,
	/* mm side: counted, not judged */
	C_MMAP, C_MUNMAP, C_MPROTECT, C_MADVISE, C_MREMAP, C_MLOCK, C_FILE,
	C_CPU, C_FORK, C_SIGNAL,
	C_NR
};

static const char *const cmd_name[C_NR] = {
	"VERSION", "BIND", "UNBIND", "READ", "WRITE", "SNAPSHOT", "MIRROR",
	"UNMIRROR", "MIRROR_SEQ", "STATS", "invalid-cmd", "read()", "poll()",
	"open", "close", "close-in-flight", "stable-check", "CONTEXT",
	"limits", "ring",
	"mmap", "munmap", "mprotect", "madvise", "mremap", "mlock", "file-op",
	"cpu-touch", "fork", "signal",
};

#define NERR 256
static unsigned long counts[C_NR][NERR];
static unsigned long status_counts[2][4];	/* READ/WRITE x status */
static int nbad;				/* unexpected results */
static volatile int stop;
static pthread_barrier_t start_line;
static bool have_module_params;

static void count(int c, int err)
{
	if (err < 0)
		err = -err;
	if (err >= NERR)
		err = NERR - 1;
	__atomic_fetch_add(&counts[c][err], 1, __ATOMIC_RELAXED);
}

/* The errno each command may fail with; anything else is a finding. */
static bool errno_expected(int c, int err)
{
	switch (c) {
	case C_VERSION:
		return err == EFAULT;
	case C_BIND:
		return err == EFAULT || err == EINVAL || err == EBUSY ||
		       err == EPERM || err == ENOSPC || err == ENOMEM ||
		       (opt_inject && err == EIO);
	case C_UNBIND:
		return err == EINVAL || err == EPERM;
	case C_READ:
	case C_WRITE:
		return err == EFAULT || err == EINVAL || err == ENOMEM ||
		       err == ENOTCONN || err == EPERM;
	case C_MIRROR:	/* ENOSPC: max_mirrors_per_context, or ids */
		return err == EFAULT || err == EINVAL || err == ENOMEM ||
		       err == ENOTCONN || err == EPERM || err == ENOSPC;
	case C_SNAPSHOT:
		return err == EFAULT || err == EINVAL || err == ENOMEM ||
		       err == ENOTCONN || err == EPERM || err == ESRCH ||
		       err == EBUSY;
	case C_UNMIRROR:
	case C_MIRROR_SEQ:
		return err == EFAULT || err == ENOENT || err == ENOTCONN ||
		       err == EPERM;
	case C_STATS:
		return err == EFAULT || err == EPERM;
	case C_INVALID:
		return err == ENOTTY || err == EPERM;
	case C_EVREAD:
		return err == EINVAL || err == EAGAIN || err == EFAULT ||
		       err == EPERM || err == EINTR;
	case C_POLL:
		return err == EINTR || (opt_inject && err == ENOMEM);
	case C_RING:	/* ENOSPC: max_ring_kb_per_user */
		return err == ENOSPC || (opt_inject && (err == ENOMEM ||
						       err == EAGAIN));
	case C_OPEN:
	case C_CONTEXT:	/* EMFILE: fd limit or max_contexts_per_user */
		return err == EMFILE || err == ENFILE ||
		       (opt_inject && err == ENOMEM);
	default:
		return true;
	}
}

/* --------------------------------------------------------- randomness */

struct thr;
static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---------------------------------------------------------- the world */

enum kind { K_NONE, K_ANON, K_ANON_SHARED, K_MEMFD_SHARED, K_MEMFD_PRIVATE,
	    K_NR };

/* A window of the arena: what the mm threads last put there. */
struct slot {
	pthread_mutex_t lock;
	int kind;
	size_t len;		/* mapped from the window's start */
	bool holes;		/* part of [0, len) unmapped */
	bool prot_rw;		/* all of [0, len) PROT_READ|PROT_WRITE */
	int memfd;		/* this slot's file, for K_MEMFD_* */
	size_t fsize;
	size_t objsize;		/* K_ANON_SHARED: the object's size */
	const char *last_op;	/* for a crash report */
	uint64_t last_arg[2];
};

/* A /dev/sva file the device threads share; replaced, never closed. */
struct sfd {
	int fd;
	pthread_mutex_t lock;	/* protects gen, ids, nids */
	unsigned int gen;
	uint32_t ids[MAXM];
	int nids;
};

struct mirror {
	uint32_t id;
	uint64_t addr, len, seq;
};

/* A device thread's own file: its state is known exactly. */
struct pfd {
	int fd;			/* -1: closed */
	bool nonblock, bound;
	uint32_t pasid;		/* bound: its PASID, 0 if not known */
	struct mirror m[MAXM];
	int nm;
	struct sva_shim_stats last;
	bool have_last;
};

/* Memory only its device thread touches: contents known (shadow). */
struct stable {
	uint8_t *p, *shadow;
	size_t len;
	int kind;		/* K_ANON, K_ANON_SHARED, K_MEMFD_SHARED */
	int memfd;
	bool dead;
};

struct thr {
	int idx;
	bool mm;
	pthread_t tid;
	pid_t ktid;
	uint64_t rng;
	unsigned long ops;
	const char *volatile op;
	volatile uint64_t arg[3];
	volatile int done;
	struct pfd pfd[NPFD];
	uint8_t *scratch;	/* SCRATCH bytes, PROT_NONE page after */
	uint8_t *iob;		/* HUGE bytes, PROT_NONE page after */
	uint8_t *ringmem;	/* RINGMEM bytes kept for op_ring's rings */
	struct stable st[NSTABLE];
};

/* The kernel's TASK_SIZE: 47 bits, or 56 with 5-level paging (la57). */
static uint64_t user_top = 0x7ffffffff000ull;
#define USER_TOP user_top
static uint8_t *arena;			/* NSLOTS * SLOT, guarded */
static struct slot slots[NSLOTS];
static struct sfd sfds[NSFD];
static struct thr thr[MAXTHREADS];
static uint8_t *ro_zero, *ro_access, *ro_mirror;	/* PROT_READ pages */
static const uint64_t kernel_ptrs[] = {
	0xffff888000000000ull, 0xffffffff81000000ull, 0xffffffffff600000ull,
	0xfffffffffffff000ull, 0x8000000000000000ull, 0x7ffffffff000ull,
	0xfffffffffffff000ull >> 8,
};

static uint64_t rnd(struct thr *t)
{
	return splitmix(&t->rng);
}

static uint64_t below(struct thr *t, uint64_t n)
{
	return n ? rnd(t) % n : 0;
}

static bool chance(struct thr *t, unsigned int percent)
{
	return below(t, 100) < percent;
}

static uint8_t *win(int i)
{
	return arena + (size_t)i * SLOT;
}

static void bad(struct thr *t, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n = __atomic_add_fetch(&nbad, 1, __ATOMIC_RELAXED);

	if (n > 100)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("fuzz: UNEXPECTED (thread %d op %lu, seed %" PRIu64 "): %s\n",
	       t ? t->idx : -1, t ? t->ops : 0, opt_seed, msg);
}

static void set_op(struct thr *t, const char *op, uint64_t a, uint64_t b,
		   uint64_t c)
{
	t->arg[0] = a;
	t->arg[1] = b;
	t->arg[2] = c;
	t->op = op;
}

static int xioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) < 0 ? -errno : 0;
}

static const char *errname(int err)
{
	const char *s;

	if (err < 0)
		err = -err;
	if (!err)
		return "ok";
	s = strerrorname_np(err);
	return s ? s : "E?";
}

/*
 * Judge an ioctl result: count it and flag an errno outside the command's
 * set. Returns r.
 */
static int judge(struct thr *t, int c, int r)
{
	count(c, r);
	if (r < 0 && !errno_expected(c, -r))
		bad(t, "%s returned %s (%d)", cmd_name[c], errname(r), r);
	return r;
}

/*
 * An error the fuzzer's own fault injection (-i: the shim's knobs, and the
 * harness's failslab and fail_function on this task) may cause where the
 * request itself can't fail: an allocation (ENOMEM, EAGAIN), or a page
 * fault of a uaccess the kernel could not resolve (EFAULT).
 */
static bool injected(int err)
{
	if (err < 0)
		err = -err;
	return opt_inject && (err == ENOMEM || err == EAGAIN || err == EFAULT);
}

/*
 * A system call the fuzzer needs to succeed (set-up, restoring a stable
 * region's protection): under -i, an allocation of it may fail; try
 * again. Returns its last result; errno stays set.
 */
#define RETRY(expr, failed)						\
	({								\
		__typeof__(expr) r_;					\
		int n_ = 0;						\
		while ((r_ = (expr)), (failed) && opt_inject &&		\
		       (errno == ENOMEM || errno == EAGAIN) && n_++ < 10000) \
			usleep(100);					\
		r_;							\
	})
#define RETRY_MMAP(...) RETRY(mmap(__VA_ARGS__), r_ == MAP_FAILED)
#define RETRY_INT(...) RETRY((__VA_ARGS__), r_ < 0)

static void guard_after(uint8_t *p, size_t len)
{
	if (RETRY_INT(mprotect(p + len, PAGE, PROT_NONE))) {
		perror("fuzz: mprotect guard");
		exit(3);
	}
}

/* len bytes followed by a PROT_NONE page. */
static uint8_t *guarded(size_t len)
{
	uint8_t *p = RETRY_MMAP(NULL, len + PAGE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("fuzz: mmap");
		exit(3);
	}
	guard_after(p, len);
	return p;
}

/*
 * Address space kept PROT_NONE for a thread to map into with MAP_FIXED
 * later: once the mm threads churn, an mmap(NULL) may land in a window of
 * the arena left unmapped, and their next munmap() of that window takes
 * it away (a ring so placed once vanished under op_ring's reads).
 */
static uint8_t *reserved(size_t len)
{
	uint8_t *p = RETRY_MMAP(NULL, len, PROT_NONE, MAP_PRIVATE |
				MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		perror("fuzz: mmap");
		exit(3);
	}
	return p;
}

/*
 * Give [p, p + len) back to the reservation it was mapped into. Never a
 * hole (munmap()): an mmap(NULL) could land there, and the next MAP_FIXED
 * into the reservation would clobber it. Should even the retries fail
 * (fault injection), what is there stays: the next MAP_FIXED replaces it.
 */
static void unreserve_map(void *p, size_t len)
{
	(void)RETRY_MMAP(p, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
			 MAP_NORESERVE | MAP_FIXED, -1, 0);
}

/* --------------------------------------------------- pointer classes */

/* A device address. For writes, only memory the fuzzer may clobber. */
static uint64_t dev_addr(struct thr *t, bool write, bool *top)
{
	unsigned int c = (unsigned int)below(t, 100);

	*top = false;
	if (c < 62)		/* the churning arena */
		return (uint64_t)win((int)below(t, NSLOTS)) +
		       below(t, SLOT / PAGE) * PAGE;
	if (c < 66)		/* the arena's last page, guard after */
		return (uint64_t)win(NSLOTS - 1) + SLOT - PAGE;
	if (c < 69)		/* the guard before the arena */
		return (uint64_t)arena - PAGE * (1 + below(t, 4));
	if (c < 74)		/* NULL and the low pages */
		return below(t, 16) * PAGE;
	if (c < 79)
		return kernel_ptrs[below(t, sizeof(kernel_ptrs) /
					 sizeof(kernel_ptrs[0]))];
	if (c < 84) {		/* just under the top of user space */
		*top = true;
		return USER_TOP - PAGE * (1 + below(t, 4));
	}
	if (c < 92)		/* misaligned */
		return (uint64_t)win((int)below(t, NSLOTS)) + 1 +
		       below(t, PAGE - 1);
	if (!write)		/* anything: device reads are harmless */
		return rnd(t) & (chance(t, 50) ? ~(PAGE - 1) : ~0ull);
	return rnd(t) | 0x8000000000000000ull;	/* never user memory */
}

static uint64_t dev_len(struct thr *t)
{
	switch (below(t, 24)) {
	case 20:
	case 21: return 1 + below(t, 3 * PAGE);	/* bytes (ABI 2) */
	case 22: return PAGE * (1 + below(t, 16)) + 1 + below(t, PAGE - 1);
	case 23: return SVA_SHIM_MAX_XFER - below(t, PAGE);
	case 0: return 0;
	case 1: return 1;
	case 2: return PAGE - 1;
	case 3: return PAGE + 1;
	case 4: return SLOT;
	case 5: return chance(t, 30) ? SVA_SHIM_MAX_XFER : 8 * SLOT;
	case 6: return SVA_SHIM_MAX_XFER + PAGE;
	case 7: return 1ull << 40;
	case 8: return -PAGE;
	case 9: return ~0ull;
	case 10: return rnd(t);
	case 11:
	case 12:
	case 13: return PAGE * (1 + below(t, 1024));
	default: return PAGE * (1 + below(t, 16));
	}
}

/* A buffer the kernel writes into (device reads, snapshot states). */
static uint64_t out_buf(struct thr *t, uint64_t addr)
{
	unsigned int c = (unsigned int)below(t, 100);

	if (c < 55)
		return (uint64_t)t->scratch + below(t, SCRATCH / PAGE) * PAGE;
	if (c < 60)		/* misaligned */
		return (uint64_t)t->scratch + below(t, SCRATCH);
	if (c < 75)
		return (uint64_t)win((int)below(t, NSLOTS)) +
		       below(t, SLOT);
	if (c < 78 && addr >= (uint64_t)arena &&
	    addr < (uint64_t)win(NSLOTS))
		return addr;	/* the device's own source */
	if (c < 82)
		return 0;
	if (c < 86)
		return kernel_ptrs[below(t, sizeof(kernel_ptrs) /
					 sizeof(kernel_ptrs[0]))];
	if (c < 92)
		return (uint64_t)ro_zero;
	return (uint64_t)arena - PAGE;	/* PROT_NONE */
}

/* A buffer the kernel reads (device writes): any readable memory too. */
static uint64_t in_buf(struct thr *t, uint64_t addr)
{
	static const char text[] = "sva-fuzz";

	switch (below(t, 8)) {
	case 0:
		return (uint64_t)text;
	case 1:
		return (uint64_t)ro_access + below(t, 16);
	case 2:
		return (uint64_t)&t->ops;	/* the thread's own, harmless */
	default:
		return out_buf(t, addr);
	}
}

/*
 * Where an ioctl's argument struct lives. good: readable and writable in
 * full, so the kernel's view of the request is exactly *local.
 */
struct argp {
	void *p;
	bool good;
	bool fault;	/* any access to it faults: the ioctl can't succeed */
	bool copy;	/* p is a scratch copy of local */
	size_t size;
};

static struct argp arg_ptr(struct thr *t, void *local, size_t size, int c)
{
	struct argp a = { local, true, false, false, size };
	unsigned int k = (unsigned int)below(t, 100);
	bool access = c == C_READ || c == C_WRITE || c == C_SNAPSHOT;

	if (k < 78)
		return a;
	a.good = false;
	if (k < 84) {		/* misaligned, fine */
		a.p = t->scratch + SCRATCH / 2 + 1 + below(t, 63);
		a.good = a.copy = true;
	} else if (k < 87) {
		a.p = NULL;
		a.fault = true;
	} else if (k < 90) {
		a.p = (void *)kernel_ptrs[below(t, 3)];
		a.fault = true;
	} else if (k < 93) {	/* read-only: a request, not writable back */
		a.p = c == C_MIRROR ? ro_mirror : access ? ro_access :
		      ro_zero;
	} else if (k < 96) {	/* straddles the scratch guard */
		a.p = t->scratch + SCRATCH - size / 2;
		memcpy(a.p, local, size / 2);
		a.fault = true;
	} else if (!access && c != C_UNMIRROR) {	/* the churning arena */
		a.p = win((int)below(t, NSLOTS)) + below(t, SLOT - size);
	} else {
		a.p = (void *)(uintptr_t)(rnd(t) | 0x8000000000000000ull);
		a.fault = true;
	}
	if (a.copy)
		memcpy(a.p, local, size);
	return a;
}

static void arg_done(struct argp *a, void *local)
{
	if (a->copy)
		memcpy(local, a->p, a->size);
}

/* ---------------------------------------------------------- the files */

static int sva_open(struct thr *t, bool nonblock)
{
	int fd = open("/dev/sva", O_RDWR | O_CLOEXEC |
		      (nonblock ? O_NONBLOCK : 0));

	judge(t, C_OPEN, fd < 0 ? -errno : 0);
	return fd;
}

/*
 * One PASID per process: while a context of ours is bound, every bind of
 * this mm, on any context, gets its PASID.
 */
static void check_pasid(struct thr *t, uint32_t pasid)
{
	for (int k = 0; k < NPFD; k++) {
		const struct pfd *f = &t->pfd[k];

		if (f->fd >= 0 && f->bound && f->pasid && f->pasid != pasid)
			bad(t, "BIND: PASID %u, while file %d of this process "
			    "is bound with PASID %u", pasid, f->fd, f->pasid);
	}
}

/*
 * SVA_SHIM_IOC_CONTEXT on fd: a new context of our mm, as a close-on-exec
 * read-write fd, or -errno.
 */
static int sva_context(struct thr *t, int fd)
{
	int nfd, fl, r;

	set_op(t, "CONTEXT", (uint64_t)fd, 0, 0);
	nfd = ioctl(fd, SVA_SHIM_IOC_CONTEXT, 0);
	r = judge(t, C_CONTEXT, nfd < 0 ? -errno : 0);
	if (nfd < 0)
		return r;
	fl = fcntl(nfd, F_GETFL);
	if (!(fcntl(nfd, F_GETFD) & FD_CLOEXEC) || fl < 0 ||
	    (fl & O_ACCMODE) != O_RDWR || (fl & O_NONBLOCK))
		bad(t, "CONTEXT fd %d: fd flags %#x, file flags %#x", nfd,
		    fcntl(nfd, F_GETFD), fl);
	return nfd;
}

static struct pfd *pick_pfd(struct thr *t, int i)
{
	struct pfd *f = &t->pfd[i];

	if (f->fd < 0) {
		memset(f, 0, sizeof(*f));
		f->nonblock = chance(t, 50);
		if (chance(t, 30)) {	/* a context made from another file */
			int src = t->pfd[!i].fd >= 0 && chance(t, 50) ?
				  t->pfd[!i].fd : sfds[below(t, NSFD)].fd;

			f->fd = sva_context(t, src);
			if (f->fd >= 0 && f->nonblock &&
			    fcntl(f->fd, F_SETFL, O_NONBLOCK))
				f->nonblock = false;
			if (f->fd < 0)
				f->fd = -1;
		} else {
			f->fd = sva_open(t, f->nonblock);
		}
	}
	return f->fd < 0 ? NULL : f;
}

static void pfd_close(struct thr *t, struct pfd *f)
{
	set_op(t, "close", (uint64_t)f->fd, 0, 0);
	count(C_CLOSE, close(f->fd) ? -errno : 0);
	f->fd = -1;
	f->bound = false;
	f->nm = 0;
	f->have_last = false;
}

static int pfd_bind(struct thr *t, struct pfd *f)
{
	struct sva_shim_bind b = { 0 };
	int r;

	if (f->bound)
		return 0;
	r = judge(t, C_BIND, xioctl(f->fd, SVA_SHIM_IOC_BIND, &b));
	if (!r) {
		check_pasid(t, b.pasid);
		f->bound = true;
		f->pasid = b.pasid;
	} else if (!opt_inject && r != -ENOMEM && r != -ENOSPC) {
		bad(t, "BIND of an unbound file: %s", errname(r));
	}
	return r;
}

/* Bound or not, asked without changing it: ENOTCONN means unbound. */
static bool pfd_probe_bound(struct thr *t, struct pfd *f)
{
	struct sva_shim_mirror m = { 0 };
	int r = xioctl(f->fd, SVA_SHIM_IOC_MIRROR_SEQ, &m);

	if (r != -ENOTCONN && r != -ENOENT)
		bad(t, "MIRROR_SEQ of id 0: %s", errname(r));
	return r != -ENOTCONN;
}

/* ----------------------------------------------------- device ioctls */

/* One device file to drive: a shared one, or one of this thread's. */
struct target {
	int fd;
	struct pfd *pf;		/* NULL: shared */
	struct sfd *sf;
	unsigned int gen;
};

static bool pick_target(struct thr *t, struct target *tg)
{
	memset(tg, 0, sizeof(*tg));
	if (chance(t, 50)) {
		tg->sf = &sfds[below(t, NSFD)];
		pthread_mutex_lock(&tg->sf->lock);
		tg->gen = tg->sf->gen;
		pthread_mutex_unlock(&tg->sf->lock);
		tg->fd = tg->sf->fd;
		return true;
	}
	tg->pf = pick_pfd(t, (int)below(t, NPFD));
	if (!tg->pf)
		return false;
	tg->fd = tg->pf->fd;
	return true;
}

/* An exact expectation on a private file: bound-only commands. */
static void expect_bound(struct thr *t, struct target *tg, int c, int r)
{
	if (!tg->pf)
		return;
	if (!tg->pf->bound && r != -ENOTCONN)
		bad(t, "%s on an unbound file: %s, not ENOTCONN", cmd_name[c],
		    errname(r));
	if (tg->pf->bound && r == -ENOTCONN)
		bad(t, "%s on a bound file: ENOTCONN", cmd_name[c]);
}

/* An argument no access can reach: never 0. */
static void expect_fault(struct thr *t, int c, const struct argp *a, int r)
{
	if (a->fault && !r)
		bad(t, "%s succeeded with its argument at %p", cmd_name[c],
		    a->p);
}

static void op_version(struct thr *t, struct target *tg)
{
	struct sva_shim_version v;
	struct argp a;
	int r;

	memset(&v, 0xa5, sizeof(v));
	a = arg_ptr(t, &v, sizeof(v), C_VERSION);
	set_op(t, "VERSION", (uint64_t)a.p, 0, 0);
	r = judge(t, C_VERSION, xioctl(tg->fd, SVA_SHIM_IOC_VERSION, a.p));
	arg_done(&a, &v);
	expect_fault(t, C_VERSION, &a, r);
	if (a.good && r && !injected(r))
		bad(t, "VERSION on a good pointer: %s", errname(r));
	if (a.good && !r && (v.abi != SVA_SHIM_ABI_VERSION ||
			     !(v.caps & SVA_SHIM_CAP_HMM) || v.pad ||
			     !v.pasid_bits || v.pasid_bits > 32))
		bad(t, "VERSION: abi %u caps %#x pasid_bits %u pad %u", v.abi,
		    v.caps, v.pasid_bits, v.pad);
}

static void op_bind(struct thr *t, struct target *tg)
{
	struct sva_shim_bind b = { 0 };
	bool fields = chance(t, 15);
	struct argp a;
	int r;

	if (fields) {
		switch (below(t, 4)) {
		case 0: b.flags = (uint32_t)rnd(t) | 1; break;
		case 1: b.pasid = (uint32_t)rnd(t) | 1; break;
		case 2: b.hw_status = (int32_t)rnd(t) | 1; break;
		default: b.pad = (uint32_t)rnd(t) | 1; break;
		}
	}
	a = arg_ptr(t, &b, sizeof(b), C_BIND);
	set_op(t, "BIND", (uint64_t)a.p, fields, 0);
	r = judge(t, C_BIND, xioctl(tg->fd, SVA_SHIM_IOC_BIND, a.p));
	arg_done(&a, &b);
	expect_fault(t, C_BIND, &a, r);
	if (!r && a.good && fields)
		bad(t, "BIND accepted nonzero fields");
	if (!r && (a.fault || a.p == ro_zero))
		bad(t, "BIND succeeded on an argument it can't write back");
	if (!r && a.good && (!b.pasid || b.pasid >= PASID_MAX ||
			     b.hw_status > 0 || b.flags || b.pad))
		bad(t, "BIND: pasid %u hw_status %d", b.pasid, b.hw_status);
	if (a.good && fields && r != -EINVAL)
		bad(t, "BIND with nonzero fields: %s", errname(r));
	if (tg->pf && a.good && !fields) {
		if (tg->pf->bound && r != -EBUSY)
			bad(t, "BIND of a bound file: %s", errname(r));
		if (!tg->pf->bound && r && !opt_inject && r != -ENOSPC &&
		    r != -ENOMEM)
			bad(t, "BIND of an unbound file: %s", errname(r));
	}
	if (!r && a.good)
		check_pasid(t, b.pasid);
	if (tg->pf && !r) {
		tg->pf->bound = true;
		tg->pf->pasid = a.good ? b.pasid : 0;
	}
	if (tg->pf && !a.good) {	/* what did the kernel make of it? */
		tg->pf->bound = pfd_probe_bound(t, tg->pf);
		tg->pf->pasid = 0;
	}
}

static void op_unbind(struct thr *t, struct target *tg)
{
	int r;

	set_op(t, "UNBIND", 0, 0, 0);
	r = judge(t, C_UNBIND, xioctl(tg->fd, SVA_SHIM_IOC_UNBIND, NULL));
	if (tg->pf) {
		if (tg->pf->bound != !r)
			bad(t, "UNBIND of a %s file: %s",
			    tg->pf->bound ? "bound" : "unbound", errname(r));
		tg->pf->bound = false;
	}
}

/* ABI 2: any byte, 1 to SVA_SHIM_MAX_XFER bytes, within user space. */
static bool access_valid(const struct sva_shim_access *a)
{
	return !(a->flags & ~SVA_SHIM_ACCESS_NO_FAULT) && !a->status &&
	       !a->bytes_done && !a->fault_addr && !a->faults && a->len &&
	       a->len <= SVA_SHIM_MAX_XFER && a->addr + a->len > a->addr &&
	       a->addr + a->len <= USER_TOP;
}

/*
 * A successful access's output against its input. Byte-granular: it
 * stops at a page it can't access, so what it moved ends at a page
 * boundary unless it is all of it; fault_addr is the first byte not moved.
 * NO_FAULT never faults: it can stop only at a page not mirrored.
 */
static void access_output(struct thr *t, const char *what,
			  const struct sva_shim_access *in,
			  const struct sva_shim_access *a)
{
	bool no_fault = a->flags & SVA_SHIM_ACCESS_NO_FAULT;

	if (a->addr != in->addr || a->len != in->len || a->buf != in->buf ||
	    a->flags != in->flags)
		bad(t, "%s changed its input fields", what);
	if (a->status > SVA_SHIM_STATUS_FAILURE || a->bytes_done > a->len ||
	    (a->status == SVA_SHIM_STATUS_OK) != (a->bytes_done == a->len) ||
	    (a->status && a->fault_addr != a->addr + a->bytes_done) ||
	    (a->status && a->bytes_done && a->fault_addr % PAGE) ||
	    (!a->status && a->fault_addr) ||
	    (a->status == SVA_SHIM_STATUS_PAGE_FAULT && !no_fault) ||
	    (no_fault && (a->status == SVA_SHIM_STATUS_INVALID ||
			  a->status == SVA_SHIM_STATUS_FAILURE)) ||
	    (no_fault && a->faults))
		bad(t, "%s addr %#llx len %#llx flags %u: status %u bytes_done "
		    "%#llx fault_addr %#llx", what,
		    (unsigned long long)a->addr, (unsigned long long)a->len,
		    a->flags, a->status, (unsigned long long)a->bytes_done,
		    (unsigned long long)a->fault_addr);
}

static void op_access(struct thr *t, struct target *tg, bool write)
{
	int c = write ? C_WRITE : C_READ;
	struct sva_shim_access a = { 0 }, in;
	struct argp ap;
	bool top;
	int r;

	a.addr = dev_addr(t, write, &top);
	a.len = dev_len(t);
	if (top && write && a.addr + a.len <= USER_TOP)
		a.len = USER_TOP - a.addr + PAGE;	/* EINVAL, never written */
	a.buf = write ? in_buf(t, a.addr) : out_buf(t, a.addr);
	a.flags = chance(t, 30) ? SVA_SHIM_ACCESS_NO_FAULT : 0;
	if (chance(t, 4))
		a.flags |= 1u << (1 + below(t, 31));
	if (chance(t, 4)) {
		switch (below(t, 4)) {
		case 0: a.status = (uint32_t)rnd(t) | 1; break;
		case 1: a.bytes_done = PAGE; break;
		case 2: a.fault_addr = a.addr | 1; break;
		default: a.faults = 1; break;
		}
	}
	in = a;
	ap = arg_ptr(t, &a, sizeof(a), c);
	set_op(t, write ? "WRITE" : "READ", a.addr, a.len, a.buf);
	r = judge(t, c, xioctl(tg->fd, write ? SVA_SHIM_IOC_WRITE :
			       SVA_SHIM_IOC_READ, ap.p));
	arg_done(&ap, &a);
	expect_bound(t, tg, c, r);
	expect_fault(t, c, &ap, r);
	if (!ap.good || r == -ENOTCONN)
		return;
	if (!access_valid(&in)) {
		if (r != -EINVAL)
			bad(t, "%s of a malformed request (addr %#llx len %#llx "
			    "flags %#x): %s", cmd_name[c],
			    (unsigned long long)in.addr,
			    (unsigned long long)in.len, in.flags, errname(r));
		return;
	}
	if (r == -EINVAL)
		bad(t, "%s addr %#llx len %#llx: EINVAL", cmd_name[c],
		    (unsigned long long)in.addr, (unsigned long long)in.len);
	if (r)
		return;
	__atomic_fetch_add(&status_counts[write][a.status & 3], 1,
			   __ATOMIC_RELAXED);
	access_output(t, cmd_name[c], &in, &a);
}

static bool state_valid(uint8_t s)
{
	if (s == SVA_SHIM_PAGE_ERROR || !s)
		return true;
	return (s & SVA_SHIM_PAGE_VALID) &&
	       !(s & ~(SVA_SHIM_PAGE_VALID | SVA_SHIM_PAGE_WRITE |
		       SVA_SHIM_PAGE_HUGE));
}

static void op_snapshot(struct thr *t, struct target *tg)
{
	struct sva_shim_snapshot s = { 0 }, in;
	uint8_t *sc = t->scratch;
	struct argp ap;
	bool top, valid;
	int r;

	s.addr = dev_addr(t, false, &top);
	s.len = dev_len(t);
	s.states = out_buf(t, s.addr);
	s.flags = (uint32_t)below(t, 4);
	if (chance(t, 4))
		s.flags |= 1u << (2 + below(t, 30));
	if (chance(t, 3))
		s.pad = (uint32_t)rnd(t) | 1;
	in = s;
	valid = !(s.flags & ~3u) && !s.pad && s.len && !(s.addr % PAGE) &&
		!(s.len % PAGE) && s.len <= SVA_SHIM_MAX_XFER &&
		s.addr + s.len > s.addr && s.addr + s.len <= USER_TOP;
	if (valid && s.states >= (uint64_t)sc &&
	    s.states < (uint64_t)sc + SCRATCH)
		memset(sc, 0xee, SCRATCH);
	ap = arg_ptr(t, &s, sizeof(s), C_SNAPSHOT);
	set_op(t, "SNAPSHOT", s.addr, s.len, s.flags);
	r = judge(t, C_SNAPSHOT, xioctl(tg->fd, SVA_SHIM_IOC_SNAPSHOT, ap.p));
	arg_done(&ap, &s);
	expect_bound(t, tg, C_SNAPSHOT, r);
	expect_fault(t, C_SNAPSHOT, &ap, r);
	if (!ap.good || r == -ENOTCONN)
		return;
	if (valid != (r != -EINVAL))
		bad(t, "SNAPSHOT addr %#llx len %#llx flags %#x pad %u: %s",
		    (unsigned long long)in.addr, (unsigned long long)in.len,
		    in.flags, in.pad, errname(r));
	if (r || memcmp(&s, &in, sizeof(s)))
		return;
	/* The states written, where we can read them back. */
	if (s.states >= (uint64_t)sc && s.states + s.len / PAGE <=
	    (uint64_t)sc + SCRATCH) {
		const uint8_t *st = (const uint8_t *)(uintptr_t)s.states;

		for (uint64_t i = 0; i < s.len / PAGE; i++)
			if (!state_valid(st[i])) {
				bad(t, "SNAPSHOT addr %#llx page %llu state %#x",
				    (unsigned long long)s.addr,
				    (unsigned long long)i, st[i]);
				break;
			}
	}
}

/* Remember a mirror a shared file holds, evicting the oldest: bounded. */
static uint32_t sfd_track(struct target *tg, uint32_t id)
{
	struct sfd *sf = tg->sf;
	uint32_t evict = 0;

	pthread_mutex_lock(&sf->lock);
	if (sf->gen == tg->gen) {
		if (sf->nids == MAXM) {
			evict = sf->ids[0];
			memmove(sf->ids, sf->ids + 1,
				(MAXM - 1) * sizeof(sf->ids[0]));
			sf->nids--;
		}
		sf->ids[sf->nids++] = id;
	}
	pthread_mutex_unlock(&sf->lock);
	return evict;
}

static void pfd_forget(struct pfd *f, int i)
{
	memmove(&f->m[i], &f->m[i + 1], (size_t)(f->nm - i - 1) *
		sizeof(f->m[0]));
	f->nm--;
}

static int pfd_find(struct pfd *f, uint32_t id)
{
	for (int i = 0; i < f->nm; i++)
		if (f->m[i].id == id)
			return i;
	return -1;
}

static int do_unmirror(struct thr *t, int fd, uint32_t id)
{
	set_op(t, "UNMIRROR", id, 0, 0);
	return judge(t, C_UNMIRROR, xioctl(fd, SVA_SHIM_IOC_UNMIRROR, &id));
}

static void op_mirror(struct thr *t, struct target *tg)
{
	struct sva_shim_mirror m = { 0 }, in;
	struct argp ap;
	bool top, valid;
	int r;

	/* Keep the kernel's count bounded: a full private file sheds one. */
	if (tg->pf && tg->pf->nm == MAXM) {
		r = do_unmirror(t, tg->fd, tg->pf->m[0].id);
		if (r)
			bad(t, "UNMIRROR of tracked mirror %u: %s",
			    tg->pf->m[0].id, errname(r));
		pfd_forget(tg->pf, 0);
	}
	switch (below(t, 6)) {
	case 0:		/* all of user space */
		m.addr = 0;
		m.len = USER_TOP;
		break;
	case 1:
		m.addr = (uint64_t)arena;
		m.len = NSLOTS * SLOT;
		break;
	case 2:
		m.addr = dev_addr(t, false, &top);
		m.len = dev_len(t);
		break;
	default:
		m.addr = (uint64_t)win((int)below(t, NSLOTS)) +
			 below(t, SLOT / PAGE) * PAGE;
		m.len = PAGE * (1 + below(t, 2 * SLOT / PAGE));
		break;
	}
	if (chance(t, 4)) {
		switch (below(t, 3)) {
		case 0: m.flags = (uint32_t)rnd(t) | 1; break;
		case 1: m.id = (uint32_t)rnd(t) | 1; break;
		default: m.seq = rnd(t) | 1; break;
		}
	}
	in = m;
	valid = !m.flags && !m.id && !m.seq && m.len && !(m.addr % PAGE) &&
		!(m.len % PAGE) && m.addr + m.len > m.addr &&
		m.addr + m.len <= USER_TOP;
	/* A read-only argument registers a mirror it can't name: private. */
	do {
		ap = arg_ptr(t, &m, sizeof(m), C_MIRROR);
	} while (ap.p == ro_mirror && !tg->pf);
	set_op(t, "MIRROR", m.addr, m.len, 0);
	r = judge(t, C_MIRROR, xioctl(tg->fd, SVA_SHIM_IOC_MIRROR, ap.p));
	arg_done(&ap, &m);
	expect_bound(t, tg, C_MIRROR, r);
	expect_fault(t, C_MIRROR, &ap, r);
	if (!ap.good || r == -ENOTCONN)
		return;
	if (valid != (r != -EINVAL))
		bad(t, "MIRROR addr %#llx len %#llx flags %#x id %u seq %llu: "
		    "%s", (unsigned long long)in.addr,
		    (unsigned long long)in.len, in.flags, in.id,
		    (unsigned long long)in.seq, errname(r));
	if (r)
		return;
	if (!m.id || m.seq || m.addr != in.addr || m.len != in.len)
		bad(t, "MIRROR: id %u seq %llu", m.id,
		    (unsigned long long)m.seq);
	if (tg->pf) {
		if (pfd_find(tg->pf, m.id) >= 0)
			bad(t, "MIRROR: id %u given twice", m.id);
		tg->pf->m[tg->pf->nm++] = (struct mirror){ m.id, m.addr,
							  m.len, 0 };
	} else {
		uint32_t evict = sfd_track(tg, m.id);

		if (evict)
			do_unmirror(t, tg->fd, evict);
	}
}

/* An id: one we hold, or not. idx: which of the private file's, or -1. */
static uint32_t pick_id(struct thr *t, struct target *tg, int *idx)
{
	*idx = -1;
	if (tg->pf && tg->pf->nm && chance(t, 70)) {
		*idx = (int)below(t, (uint64_t)tg->pf->nm);
		return tg->pf->m[*idx].id;
	}
	if (tg->sf && chance(t, 60)) {
		uint32_t id = 0;

		pthread_mutex_lock(&tg->sf->lock);
		if (tg->sf->nids)
			id = tg->sf->ids[below(t, (uint64_t)tg->sf->nids)];
		pthread_mutex_unlock(&tg->sf->lock);
		if (id)
			return id;
	}
	switch (below(t, 4)) {
	case 0: return 0;
	case 1: return ~0u;
	default: return (uint32_t)below(t, 4096);
	}
}

static void op_unmirror(struct thr *t, struct target *tg)
{
	int idx, r;
	uint32_t id = pick_id(t, tg, &idx);
	struct argp ap = arg_ptr(t, &id, sizeof(id), C_UNMIRROR);

	set_op(t, "UNMIRROR", id, 0, 0);
	r = judge(t, C_UNMIRROR, xioctl(tg->fd, SVA_SHIM_IOC_UNMIRROR, ap.p));
	expect_bound(t, tg, C_UNMIRROR, r);
	expect_fault(t, C_UNMIRROR, &ap, r);
	if (!tg->pf || !ap.good || r == -ENOTCONN)
		return;
	if (idx >= 0) {
		if (r)
			bad(t, "UNMIRROR of mirror %u we hold: %s", id,
			    errname(r));
		pfd_forget(tg->pf, idx);
	} else if (r != -ENOENT && r != 0) {
		bad(t, "UNMIRROR of id %u: %s", id, errname(r));
	} else if (!r && pfd_find(tg->pf, id) >= 0) {
		pfd_forget(tg->pf, pfd_find(tg->pf, id));
	}
}

static void op_mirror_seq(struct thr *t, struct target *tg)
{
	struct sva_shim_mirror m = { 0 };
	struct argp ap;
	int idx, r;

	m.id = pick_id(t, tg, &idx);
	if (chance(t, 20)) {	/* the kernel ignores the rest */
		m.addr = rnd(t);
		m.len = rnd(t);
		m.flags = (uint32_t)rnd(t);
	}
	ap = arg_ptr(t, &m, sizeof(m), C_MIRROR_SEQ);
	set_op(t, "MIRROR_SEQ", m.id, 0, 0);
	r = judge(t, C_MIRROR_SEQ, xioctl(tg->fd, SVA_SHIM_IOC_MIRROR_SEQ,
					  ap.p));
	arg_done(&ap, &m);
	expect_bound(t, tg, C_MIRROR_SEQ, r);
	expect_fault(t, C_MIRROR_SEQ, &ap, r);
	if (!ap.good || r == -ENOTCONN)
		return;
	if (!r && (m.addr % PAGE || !m.len || m.len % PAGE))
		bad(t, "MIRROR_SEQ %u: addr %#llx len %#llx", m.id,
		    (unsigned long long)m.addr, (unsigned long long)m.len);
	if (!tg->pf || idx < 0)
		return;
	if (r) {
		bad(t, "MIRROR_SEQ of mirror %u we hold: %s", m.id, errname(r));
	} else {
		struct mirror *mr = &tg->pf->m[idx];

		if (m.addr != mr->addr || m.len != mr->len || m.seq < mr->seq)
			bad(t, "MIRROR_SEQ %u: [%#llx +%#llx] seq %llu, registered"
			    " [%#llx +%#llx] seq was %llu", m.id,
			    (unsigned long long)m.addr,
			    (unsigned long long)m.len,
			    (unsigned long long)m.seq,
			    (unsigned long long)mr->addr,
			    (unsigned long long)mr->len,
			    (unsigned long long)mr->seq);
		mr->seq = m.seq;
	}
}

static void op_stats(struct thr *t, struct target *tg)
{
	struct sva_shim_stats s;
	struct argp ap;
	int r;

	memset(&s, 0xa5, sizeof(s));
	ap = arg_ptr(t, &s, sizeof(s), C_STATS);
	set_op(t, "STATS", (uint64_t)ap.p, 0, 0);
	r = judge(t, C_STATS, xioctl(tg->fd, SVA_SHIM_IOC_STATS, ap.p));
	arg_done(&ap, &s);
	expect_fault(t, C_STATS, &ap, r);
	if (!ap.good)
		return;
	if (r) {
		if (!injected(r))
			bad(t, "STATS on a good pointer: %s", errname(r));
		return;
	}
	/* The fuzzer gives no context device memory: nothing migrated. */
	if (s.devmem_accesses || s.migrated_to_dev || s.migrated_to_host ||
	    s.cpu_fault_migrations || s.evictions)
		bad(t, "STATS: device memory counters without device memory");
	/* Counted apart: only a private file is quiet while we read. */
	if (tg->pf && s.atc_hits + s.atc_misses != s.translations)
			bad(t, "STATS: hits %llu + misses %llu > translations "
			    "%llu", (unsigned long long)s.atc_hits,
			    (unsigned long long)s.atc_misses,
			    (unsigned long long)s.translations);
	if (tg->pf) {
		const __u64 *now = &s.translations;
		const __u64 *was = &tg->pf->last.translations;

		for (int i = 0; tg->pf->have_last && i < 11; i++)
			if (now[i] < was[i])
				bad(t, "STATS counter %d went back: %llu -> %llu",
				    i, (unsigned long long)was[i],
				    (unsigned long long)now[i]);
		tg->pf->last = s;
		tg->pf->have_last = true;
	}
}

/*
 * CONTEXT on any file, bound or not, shared or ours (even one another
 * thread is replacing): a new, unbound, unused context of our mm that works
 * as an opened file does; kept as a private file, or closed.
 */
static void op_context(struct thr *t, struct target *tg)
{
	struct sva_shim_mirror m = { 0 };
	struct sva_shim_stats st;
	struct sva_shim_bind b = { 0 };
	int fd = sva_context(t, tg->fd), r, slot = -1;

	if (fd < 0)
		return;
	r = xioctl(fd, SVA_SHIM_IOC_MIRROR_SEQ, &m);
	if (r != -ENOTCONN)
		bad(t, "MIRROR_SEQ on a new context: %s, not ENOTCONN",
		    errname(r));
	memset(&st, 0xa5, sizeof(st));
	r = judge(t, C_STATS, xioctl(fd, SVA_SHIM_IOC_STATS, &st));
	if (r && !injected(r))
		bad(t, "STATS on a new context: %s", errname(r));
	if (!r && (st.translations || st.page_requests || st.bytes_done ||
		   st.atc_invalidated))
		bad(t, "STATS of a new context: translations %llu page_requests "
		    "%llu bytes_done %llu atc_invalidated %llu",
		    (unsigned long long)st.translations,
		    (unsigned long long)st.page_requests,
		    (unsigned long long)st.bytes_done,
		    (unsigned long long)st.atc_invalidated);
	for (int k = 0; k < NPFD; k++)
		if (t->pfd[k].fd < 0)
			slot = k;
	if (slot < 0 || chance(t, 30)) {
		if (chance(t, 50)) {
			r = judge(t, C_BIND, xioctl(fd, SVA_SHIM_IOC_BIND, &b));
			if (!r)
				check_pasid(t, b.pasid);
			else if (!opt_inject && r != -ENOMEM && r != -ENOSPC)
				bad(t, "BIND of a new context: %s", errname(r));
		}
		set_op(t, "close", (uint64_t)fd, 0, 0);
		count(C_CLOSE, close(fd) ? -errno : 0);
		return;
	}
	memset(&t->pfd[slot], 0, sizeof(t->pfd[slot]));
	t->pfd[slot].fd = fd;
	if (chance(t, 50) && !fcntl(fd, F_SETFL, O_NONBLOCK))
		t->pfd[slot].nonblock = true;
}

static bool cmd_valid(uint32_t c)
{
	static const uint32_t valid[] = {
		SVA_SHIM_IOC_VERSION, SVA_SHIM_IOC_BIND, SVA_SHIM_IOC_UNBIND,
		SVA_SHIM_IOC_READ, SVA_SHIM_IOC_WRITE, SVA_SHIM_IOC_SNAPSHOT,
		SVA_SHIM_IOC_MIRROR, SVA_SHIM_IOC_UNMIRROR,
		SVA_SHIM_IOC_MIRROR_SEQ, SVA_SHIM_IOC_STATS,
		SVA_SHIM_IOC_CONTEXT, SVA_SHIM_IOC_DEVMEM,
		SVA_SHIM_IOC_MIGRATE,
		SVA_SHIM_IOC_EXCLUSIVE,
		SVA_SHIM_IOC_STATS_ABI2,
		SVA_SHIM_IOC_RING_SETUP, SVA_SHIM_IOC_RING_ENTER,
	};

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		if (c == valid[i])
			return true;
	return false;
}

/*
 * A command number the shim doesn't know. The VFS answers some command
 * types itself before the driver sees them (FIOCLEX, FIONBIO, FIFREEZE on
 * devtmpfs, FICLONE...): those types are never drawn.
 */
static unsigned long invalid_cmd(struct thr *t)
{
	for (;;) {
		unsigned long c;
		uint32_t c32, type;

		switch (below(t, 4)) {
		case 0:
			c = _IOC(below(t, 4), 'S', 10 + below(t, 246),
				 below(t, 1u << 14));
			break;
		case 1:
			c = _IOC(below(t, 4), 'S', below(t, 10),
				 below(t, 1u << 14));
			break;
		case 2:
			c = (uint32_t)rnd(t);
			break;
		default:
			c = rnd(t);	/* the kernel truncates to 32 bits */
			break;
		}
		c32 = (uint32_t)c;
		type = _IOC_TYPE(c32);
		if (type == 'T' || type == 'X' || type == 'f' || type == 0x94 ||
		    type == 0 || type == 0x15 || cmd_valid(c32))
			continue;
		return c;
	}
}

static void op_invalid(struct thr *t, struct target *tg)
{
	unsigned long c = invalid_cmd(t);
	uint64_t arg = chance(t, 50) ? (uint64_t)t->scratch : rnd(t);
	int r;

	set_op(t, "invalid-cmd", c, arg, 0);
	r = ioctl(tg->fd, c, (void *)(uintptr_t)arg) < 0 ? -errno : 0;
	judge(t, C_INVALID, r);
	if (r != -ENOTTY)
		bad(t, "ioctl %#lx: %s, not ENOTTY", c, errname(r));
}

/*
 * Each record on its own. INVALIDATE (ABI 2): one per invalidation that
 * dropped translations or overlapped mirrors, start/end the whole range,
 * mirror how many ranges it overlapped (0: it only dropped translations),
 * seq the context's count of them (never 0). MIGRATE: a CPU fault or an
 * eviction moved pages of device memory back (sva_shim.h). LOST: seq records dropped, the
 * rest zero; only the first record of a read() can be one. Returns how many
 * records were said lost.
 */
static uint64_t check_events(struct thr *t, const uint8_t *buf, ssize_t n,
			     bool one_read)
{
	uint64_t lost = 0;

	for (ssize_t off = 0; off + (ssize_t)EV_SIZE <= n; off += EV_SIZE) {
		struct sva_shim_event ev;
		bool ok;

		memcpy(&ev, buf + off, sizeof(ev));
		if (ev.type == SVA_SHIM_EVENT_PAGE_REQUEST)
			ok = (ev.access == 1 || ev.access == 2) &&
			     ev.response <= SVA_SHIM_RESP_FAILURE &&
			     ev.start < ev.end && !(ev.start % PAGE) &&
			     !(ev.end % PAGE) && !ev.reason && !ev.mirror &&
			     !ev.seq;
		else if (ev.type == SVA_SHIM_EVENT_INVALIDATE)
			ok = ev.reason <= SVA_SHIM_INVAL_REMAP &&
			     ev.start < ev.end && !ev.access &&
			     !ev.response && ev.seq > 0;
		else if (ev.type == SVA_SHIM_EVENT_MIGRATE)
			/* CPU faults name their first page, evictions none;
			 * end is when it began, mirror the thread. */
			ok = (ev.access == SVA_SHIM_MIG_CPU_FAULT ?
			      ev.start && !(ev.start % PAGE) :
			      ev.access == SVA_SHIM_MIG_EVICTION && !ev.start) &&
			     ev.response > 0 && ev.end > 0 &&
			     ev.reason <= 1024 &&
			     (ev.access == SVA_SHIM_MIG_EVICTION) == !!ev.mirror;
		else if (ev.type == SVA_SHIM_EVENT_LOST)
			ok = (!off || !one_read) && ev.seq > 0 && !ev.pasid &&
			     !ev.start &&
			     !ev.end && !ev.access && !ev.response &&
			     !ev.reason && !ev.mirror;
		else
			ok = false;
		if (ok && ev.type == SVA_SHIM_EVENT_LOST)
			lost += ev.seq;
		if (!ok || ev.pasid >= PASID_MAX) {
			bad(t, "event type %u pasid %u [%#llx, %#llx) access %u "
			    "response %u reason %u mirror %u seq %llu", ev.type,
			    ev.pasid, (unsigned long long)ev.start,
			    (unsigned long long)ev.end, ev.access, ev.response,
			    ev.reason, ev.mirror, (unsigned long long)ev.seq);
			return lost;
		}
	}
	return lost;
}

static void op_evread(struct thr *t, struct target *tg)
{
	static const size_t lens[] = { 0, 1, EV_SIZE - 1, EV_SIZE,
		2 * EV_SIZE, 3 * EV_SIZE + 5, PAGE, 256 * EV_SIZE, 1ul << 30,
		~0ul };
	size_t len = lens[below(t, sizeof(lens) / sizeof(lens[0]))];
	uint64_t buf = out_buf(t, 0);
	bool ours = buf >= (uint64_t)t->scratch &&
		    buf < (uint64_t)t->scratch + SCRATCH;
	ssize_t n;
	int r;

	/* A blocking private file: only when something is queued. */
	if (tg->pf && !tg->pf->nonblock && len >= EV_SIZE) {
		struct pollfd p = { .fd = tg->fd, .events = POLLIN };

		if (poll(&p, 1, 0) != 1)
			return;
	}
	set_op(t, "read()", buf, len, 0);
	n = read(tg->fd, (void *)(uintptr_t)buf, len);
	r = n < 0 ? -errno : 0;
	judge(t, C_EVREAD, r);
	if (n < 0) {
		/* The VFS checks the buffer before the driver the length. */
		if (ours && len < EV_SIZE && r != -EINVAL)
			bad(t, "read() of %zu bytes: %s", len, errname(r));
		if (len >= EV_SIZE && r == -EINVAL && len <= (1ul << 30))
			bad(t, "read() of %zu bytes: EINVAL", len);
		return;
	}
	if (len < EV_SIZE || n % EV_SIZE || (size_t)n > len)
		bad(t, "read() of %zu bytes returned %zd", len, n);
	else if (ours && (size_t)(buf - (uint64_t)t->scratch) + (size_t)n <=
		 SCRATCH)
		check_events(t, (const uint8_t *)(uintptr_t)buf, n, true);
}

static void op_poll(struct thr *t)
{
	struct pollfd p[NSFD + NPFD];
	int n = 0, r;

	for (int i = 0; i < NSFD; i++)
		p[n++] = (struct pollfd){ .fd = sfds[i].fd,
					  .events = POLLIN | POLLOUT };
	for (int i = 0; i < NPFD; i++)
		if (t->pfd[i].fd >= 0)
			p[n++] = (struct pollfd){ .fd = t->pfd[i].fd,
						  .events = POLLIN };
	set_op(t, "poll()", (uint64_t)n, 0, 0);
	r = poll(p, (nfds_t)n, chance(t, 80) ? 0 : (int)below(t, 5));
	judge(t, C_POLL, r < 0 ? -errno : 0);
	for (int i = 0; r > 0 && i < n; i++)
		if (p[i].revents & ~(POLLIN | POLLRDNORM))
			bad(t, "poll() revents %#x on fd %d", p[i].revents,
			    p[i].fd);
}

/* close() a private file, or replace a shared one under other threads. */
static void op_close(struct thr *t)
{
	if (chance(t, 60)) {
		struct pfd *f = &t->pfd[below(t, NPFD)];

		if (f->fd >= 0)
			pfd_close(t, f);
		return;
	}
	struct sfd *sf = &sfds[below(t, NSFD)];
	int fd = sva_open(t, true);

	if (fd < 0)
		return;
	set_op(t, "close-in-flight", (uint64_t)sf->fd, 0, 0);
	if (chance(t, 50)) {
		struct sva_shim_bind b = { 0 };

		judge(t, C_BIND, xioctl(fd, SVA_SHIM_IOC_BIND, &b));
	}
	pthread_mutex_lock(&sf->lock);
	/* The old file goes when the last ioctl in flight on it returns. */
	count(C_REPLACE, dup2(fd, sf->fd) < 0 ? -errno : 0);
	sf->gen++;
	sf->nids = 0;
	pthread_mutex_unlock(&sf->lock);
	close(fd);
}

/* ------------------------------------------------------ stable checks */

static void fill(struct thr *t, uint8_t *p, size_t len)
{
	uint64_t x = rnd(t);

	for (size_t i = 0; i < len; i += 8) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		memcpy(p + i, &x, len - i < 8 ? len - i : 8);
	}
}

static int stable_access(struct thr *t, struct pfd *f, bool write,
			 uint8_t *addr, size_t len, uint32_t flags,
			 struct sva_shim_access *a)
{
	int r;

	memset(a, 0, sizeof(*a));
	a->addr = (uint64_t)addr;
	a->len = len;
	a->buf = (uint64_t)t->iob;
	a->flags = flags;
	set_op(t, write ? "stable WRITE" : "stable READ", a->addr, len, flags);
	r = judge(t, write ? C_WRITE : C_READ,
		  xioctl(f->fd, write ? SVA_SHIM_IOC_WRITE : SVA_SHIM_IOC_READ,
			 a));
	if (r) {
		if (!injected(r))
			bad(t, "stable %s [%p +%#zx]: %s",
			    write ? "WRITE" : "READ", addr, len, errname(r));
		return r;
	}
	__atomic_fetch_add(&status_counts[write][a->status & 3], 1,
			   __ATOMIC_RELAXED);
	return 0;
}

/* What a device access on mapped, accessible memory may report. */
static bool stable_status_ok(const struct sva_shim_access *a)
{
	if (a->status == SVA_SHIM_STATUS_OK)
		return true;
	if (a->status == SVA_SHIM_STATUS_PAGE_FAULT &&
	    (a->flags & SVA_SHIM_ACCESS_NO_FAULT))
		return true;
	return opt_inject != 0;
}

static const char *const kind_name[K_NR] = {
	"none", "anon", "anon-shared", "memfd-shared", "memfd-private",
};

static void stable_compare(struct thr *t, struct stable *s, const char *when)
{
	for (size_t i = 0; i < s->len; i += PAGE)
		if (memcmp(s->p + i, s->shadow + i, PAGE)) {
			size_t b = i;

			while (s->p[b] == s->shadow[b])
				b++;
			bad(t, "%s region: CPU sees byte %#zx = %#x, expected "
			    "%#x (%s)", kind_name[s->kind], b, s->p[b],
			    s->shadow[b], when);
			/* Resynchronise, so one fault is reported once. */
			memcpy(s->shadow, s->p, s->len);
			return;
		}
}

/* Device-read [off, off+len) of s and compare it with what we know. */
static void stable_read_check(struct thr *t, struct pfd *f, struct stable *s,
			      size_t off, size_t len, const char *when)
{
	uint32_t flags = chance(t, 25) ? SVA_SHIM_ACCESS_NO_FAULT : 0;
	struct sva_shim_access a;

	if (stable_access(t, f, false, s->p + off, len, flags, &a))
		return;
	access_output(t, "stable READ", &(struct sva_shim_access){
		.addr = a.addr, .len = a.len, .buf = a.buf, .flags = flags },
		&a);
	if (!stable_status_ok(&a))
		bad(t, "stable READ of %s [+%#zx, +%#zx) (%s): status %u at "
		    "+%#llx", kind_name[s->kind], off, off + len, when,
		    a.status, (unsigned long long)(a.fault_addr -
						   (uint64_t)s->p));
	for (size_t i = 0; i < a.bytes_done; i += PAGE)
		if (memcmp(t->iob + i, s->shadow + off + i,
			   a.bytes_done - i < PAGE ? a.bytes_done - i : PAGE)) {
			size_t b = i;

			while (t->iob[b] == s->shadow[off + b])
				b++;
			bad(t, "stable READ of %s (%s): device sees byte +%#zx "
			    "= %#x, expected %#x (CPU sees %#x)",
			    kind_name[s->kind], when, off + b, t->iob[b],
			    s->shadow[off + b], s->p[off + b]);
			return;
		}
}

static void stable_write_check(struct thr *t, struct pfd *f, struct stable *s,
			       size_t off, size_t len, const char *when)
{
	uint32_t flags = chance(t, 25) ? SVA_SHIM_ACCESS_NO_FAULT : 0;
	struct sva_shim_access a;

	fill(t, t->iob, len);
	if (stable_access(t, f, true, s->p + off, len, flags, &a))
		return;
	access_output(t, "stable WRITE", &(struct sva_shim_access){
		.addr = a.addr, .len = a.len, .buf = a.buf, .flags = flags },
		&a);
	if (!stable_status_ok(&a))
		bad(t, "stable WRITE of %s [+%#zx, +%#zx) (%s): status %u at "
		    "+%#llx", kind_name[s->kind], off, off + len, when,
		    a.status, (unsigned long long)(a.fault_addr -
						   (uint64_t)s->p));
	memcpy(s->shadow + off, t->iob, a.bytes_done);
	stable_compare(t, s, when);
}

static void stable_range(struct thr *t, struct stable *s, size_t *off,
			 size_t *len)
{
	size_t pages = s->len / PAGE;
	size_t first = below(t, pages);

	*off = first * PAGE;
	*len = PAGE * (1 + below(t, pages - first));
}

/*
 * Any bytes of the region (ABI 2 accesses are byte-granular): often a few
 * within a page or across one boundary, else any span.
 */
static void stable_bytes(struct thr *t, struct stable *s, size_t *off,
			 size_t *len)
{
	switch (below(t, 3)) {
	case 0:		/* within a page */
		*off = below(t, s->len);
		*len = 1 + below(t, PAGE - *off % PAGE);
		break;
	case 1:		/* across a page boundary */
		*off = PAGE * (1 + below(t, s->len / PAGE - 1)) -
		       1 - below(t, 64);
		*len = 2 + below(t, 128);
		break;
	default:
		*off = below(t, s->len);
		*len = 1 + below(t, s->len - *off);
		break;
	}
	if (*off + *len > s->len)
		*len = s->len - *off;
}

/* mprotect: a warm writable translation must not survive PROT_READ. */
static void stable_protect(struct thr *t, struct pfd *f, struct stable *s,
			   size_t off, size_t len)
{
	bool none = chance(t, 40);
	uint32_t flags = chance(t, 30) ? SVA_SHIM_ACCESS_NO_FAULT : 0;
	struct sva_shim_access a;

	/* Warm: the device page table holds the pages writable. */
	memcpy(t->iob, s->shadow + off, len);
	stable_access(t, f, true, s->p + off, len, 0, &a);
	if (mprotect(s->p, s->len, none ? PROT_NONE : PROT_READ)) {
		int e = -errno;

		if (!injected(e))
			bad(t, "mprotect of a stable region: %s", errname(e));
		/* Part of it may have changed: all back, or give it up. */
		if (RETRY_INT(mprotect(s->p, s->len, PROT_READ | PROT_WRITE)))
			s->dead = true;
		return;
	}
	if (none) {
		memset(t->iob, 0x11, len);
		if (!stable_access(t, f, false, s->p + off, len, flags, &a) &&
		    (a.status == SVA_SHIM_STATUS_OK || a.bytes_done))
			bad(t, "device READ of a PROT_NONE %s page: status %u "
			    "bytes_done %#llx", kind_name[s->kind], a.status,
			    (unsigned long long)a.bytes_done);
	} else {
		fill(t, t->iob, len);
		if (!stable_access(t, f, true, s->p + off, len, flags, &a) &&
		    (a.status == SVA_SHIM_STATUS_OK || a.bytes_done))
			bad(t, "device WRITE of a read-only %s page: status %u "
			    "bytes_done %#llx", kind_name[s->kind], a.status,
			    (unsigned long long)a.bytes_done);
		stable_compare(t, s, "write to read-only");
		stable_read_check(t, f, s, off, len, "read-only");
	}
	if (RETRY_INT(mprotect(s->p, s->len, PROT_READ | PROT_WRITE))) {
		bad(t, "mprotect back: %s", errname(-errno));
		s->dead = true;	/* the CPU can't write it any more */
		return;
	}
	if (none)
		stable_compare(t, s, "after PROT_NONE");
}

/*
 * Drain a private file's events into buf, one read() at a time; how many
 * were lost so far (the STATS counter), and in *lost_rec what LOST records
 * said.
 */
static uint64_t drain(struct thr *t, struct pfd *f, uint8_t *buf, size_t len,
		      ssize_t *got, uint64_t *lost_rec)
{
	struct sva_shim_stats st;
	struct pollfd p = { .fd = f->fd, .events = POLLIN };
	ssize_t n = 0, r;
	uint64_t said = 0;
	int e;

	while (poll(&p, 1, 0) == 1 && (size_t)n + EV_SIZE <= len) {
		r = read(f->fd, buf + n, len - (size_t)n);
		if (r <= 0)
			break;
		said += check_events(t, buf + n, r, true);
		n += r;
	}
	if (got)
		*got = n;
	if (lost_rec)
		*lost_rec = said;
	memset(&st, 0, sizeof(st));
	e = xioctl(f->fd, SVA_SHIM_IOC_STATS, &st);
	if (e && !injected(e))
		bad(t, "STATS: %s", errname(e));
	return st.events_lost;
}

/* Resynchronise the shadow after an mm call on the region failed (-i). */
static void stable_resync(struct stable *s)
{
	memcpy(s->shadow, s->p, s->len);
}

/*
 * DONTNEED a mirrored stable range: the mirror's sequence advances, and
 * INVALIDATE records (reason CLEAR, overlapping at least one mirror) that
 * cover the range are queued, unless a LOST record says some were dropped.
 * One per invalidation: a range over several VMAs may take several.
 */
static void stable_dontneed(struct thr *t, struct pfd *f, struct stable *s,
			    size_t off, size_t len)
{
	struct sva_shim_mirror m = { .addr = (uint64_t)s->p + off, .len = len };
	uint64_t lost0, lost1, seq0, said = 0;
	uint8_t covered[HUGE / PAGE];
	uint8_t *evs = t->scratch;
	size_t pages = len / PAGE, ncov = 0;
	ssize_t n;
	int r;

	set_op(t, "stable DONTNEED", m.addr, len, 0);
	r = judge(t, C_MIRROR, xioctl(f->fd, SVA_SHIM_IOC_MIRROR, &m));
	if (r) {
		if (!opt_inject)
			bad(t, "MIRROR of a stable range: %s", errname(r));
		return;
	}
	/* Populated, so there is something to zap. */
	fill(t, s->p + off, len);
	memcpy(s->shadow + off, s->p + off, len);
	lost0 = drain(t, f, evs, SCRATCH, NULL, NULL);
	r = judge(t, C_MIRROR_SEQ, xioctl(f->fd, SVA_SHIM_IOC_MIRROR_SEQ, &m));
	if (r)
		bad(t, "MIRROR_SEQ %u: %s", m.id, errname(r));
	seq0 = m.seq;
	if (madvise(s->p + off, len, MADV_DONTNEED)) {
		r = -errno;
		if (!injected(r))
			bad(t, "madvise DONTNEED: %s", errname(r));
		/* Some of it may be gone: what the CPU sees is the truth. */
		stable_resync(s);
		goto out;
	}
	if (s->kind == K_ANON)
		memset(s->shadow + off, 0, len);
	if (judge(t, C_MIRROR_SEQ, xioctl(f->fd, SVA_SHIM_IOC_MIRROR_SEQ,
					  &m)) || m.seq <= seq0) {
		uint64_t again;

		/* Once more, now that other invalidations had time to end. */
		usleep(100000);
		fill(t, s->p + off, len);
		memcpy(s->shadow + off, s->p + off, len);
		if (madvise(s->p + off, len, MADV_DONTNEED))
			stable_resync(s);
		else if (s->kind == K_ANON)
			memset(s->shadow + off, 0, len);
		xioctl(f->fd, SVA_SHIM_IOC_MIRROR_SEQ, &m);
		again = m.seq;
		m.seq = seq0;
		bad(t, "MIRROR_SEQ %u after DONTNEED of its whole range [%p +%#zx] "
		    "(%s): seq %llu, was %llu; after a second DONTNEED 100 ms "
		    "later: %llu", m.id, s->p + off, len, kind_name[s->kind],
		    (unsigned long long)m.seq, (unsigned long long)seq0,
		    (unsigned long long)again);
	}
	lost1 = drain(t, f, evs, SCRATCH, &n, &said);
	memset(covered, 0, sizeof(covered));
	for (ssize_t i = 0; i + (ssize_t)EV_SIZE <= n; i += EV_SIZE) {
		struct sva_shim_event ev;

		memcpy(&ev, evs + i, sizeof(ev));
		if (ev.type != SVA_SHIM_EVENT_INVALIDATE || !ev.mirror ||
		    ev.reason != SVA_SHIM_INVAL_CLEAR || ev.end <= m.addr ||
		    ev.start >= m.addr + len)
			continue;
		for (size_t pg = 0; pg < pages; pg++) {
			uint64_t a = m.addr + pg * PAGE;

			if (a >= ev.start && a + PAGE <= ev.end && !covered[pg]) {
				covered[pg] = 1;
				ncov++;
			}
		}
	}
	if (ncov < pages && !said && lost1 == lost0 &&
	    (size_t)n + EV_SIZE <= SCRATCH) {
		size_t pg = 0;

		while (covered[pg])
			pg++;
		bad(t, "no INVALIDATE record (CLEAR, mirrors >= 1) covers page "
		    "+%#zx of mirror %u [%p +%#zx] after DONTNEED (%zd bytes "
		    "of events, none lost)", pg * PAGE, m.id, s->p + off, len,
		    n);
	}
out:
	r = judge(t, C_UNMIRROR, xioctl(f->fd, SVA_SHIM_IOC_UNMIRROR, &m.id));
	if (r)
		bad(t, "UNMIRROR %u: %s", m.id, errname(r));
	stable_read_check(t, f, s, 0, s->len, "after DONTNEED");
}

static void *stable_map(int kind, int memfd, void *at, size_t len, off_t off)
{
	int flags = at ? MAP_FIXED_NOREPLACE : 0;
	void *p;

	if (kind == K_MEMFD_SHARED)
		p = RETRY_MMAP(at, len, PROT_READ | PROT_WRITE,
			       MAP_SHARED | flags, memfd, off);
	else
		p = RETRY_MMAP(at, len, PROT_READ | PROT_WRITE, flags |
			       MAP_ANONYMOUS | (kind == K_ANON ? MAP_PRIVATE :
						MAP_SHARED), -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* munmap + mmap again: the device must see the new memory, not the old. */
static void stable_remap(struct thr *t, struct pfd *f, struct stable *s,
			 size_t off, size_t len)
{
	struct sva_shim_access a;

	stable_read_check(t, f, s, 0, s->len, "warm before munmap");
	if (munmap(s->p + off, len)) {
		if (!injected(-errno))
			bad(t, "munmap: %s", errname(-errno));
		return;
	}
	/* -i: an injected fault may stop it earlier, never later. */
	if (!stable_access(t, f, false, s->p, s->len, 0, &a) &&
	    (a.status == SVA_SHIM_STATUS_OK || a.bytes_done > off ||
	     (!opt_inject && (a.status != SVA_SHIM_STATUS_INVALID ||
			      a.bytes_done != off))))
		bad(t, "device READ over a munmap()ed hole at +%#zx: status %u "
		    "bytes_done %#llx", off, a.status,
		    (unsigned long long)a.bytes_done);
	if (stable_map(s->kind, s->memfd, s->p + off, len, (off_t)off) !=
	    s->p + off) {
		printf("fuzz: thread %d: remapping a stable region failed "
		       "(%s), dropped\n", t->idx, strerror(errno));
		s->dead = true;
		return;
	}
	if (s->kind != K_MEMFD_SHARED)
		memset(s->shadow + off, 0, len);
	stable_compare(t, s, "after munmap+mmap");
	stable_read_check(t, f, s, 0, s->len, "after munmap+mmap");
}

static void op_stable(struct thr *t)
{
	struct stable *s = &t->st[below(t, NSTABLE)];
	struct pfd *f = pick_pfd(t, 0);
	size_t off, len;

	if (!f || s->dead || pfd_bind(t, f))
		return;
	count(C_STABLE, 0);
	stable_range(t, s, &off, &len);
	set_op(t, "stable", (uint64_t)s->p, off, len);
	switch (below(t, 10)) {
	case 0:
	case 1:		/* the CPU writes, the device reads */
		fill(t, s->p + off, len);
		memcpy(s->shadow + off, s->p + off, len);
		if (chance(t, 50))
			stable_bytes(t, s, &off, &len);
		else
			stable_range(t, s, &off, &len);
		stable_read_check(t, f, s, off, len, "after CPU write");
		break;
	case 2:
	case 3:		/* the device writes, the CPU reads: those bytes only */
		if (chance(t, 60))
			stable_bytes(t, s, &off, &len);
		stable_write_check(t, f, s, off, len, "device write");
		break;
	case 4:
		stable_protect(t, f, s, off, len);
		break;
	case 5:
		stable_dontneed(t, f, s, off, len);
		break;
	case 6:
		stable_remap(t, f, s, off, len);
		break;
	case 7: {	/* reclaim hints: the contents stay */
		static const int adv[] = { MADV_PAGEOUT, MADV_COLD,
					   MADV_HUGEPAGE, MADV_COLLAPSE,
					   MADV_NOHUGEPAGE };

		size_t boff, blen;

		/*
		 * A device write dirties what it wrote: reclaim must write
		 * it back, not drop it as a clean page.
		 */
		stable_bytes(t, s, &boff, &blen);
		if (chance(t, 50))
			stable_write_check(t, f, s, boff, blen, "before madvise");
		else
			stable_read_check(t, f, s, 0, s->len, "warm");
		madvise(s->p + off, len, adv[below(t, 5)]);
		stable_read_check(t, f, s, 0, s->len, "after madvise");
		stable_compare(t, s, "after madvise");
		break;
	}
	case 8: {	/* snapshot: the region is mapped, the guard is not */
		struct sva_shim_snapshot sn = {
			.addr = (uint64_t)s->p, .len = s->len + PAGE,
			.states = (uint64_t)t->scratch,
			.flags = (uint32_t)below(t, 4),
		};
		const uint8_t *st = t->scratch;

		memset(t->scratch, 0xee, s->len / PAGE + 1);
		set_op(t, "stable SNAPSHOT", sn.addr, sn.len, sn.flags);
		int r = judge(t, C_SNAPSHOT, xioctl(f->fd, SVA_SHIM_IOC_SNAPSHOT,
						    &sn));

		if (r) {
			if (r != -EBUSY && !injected(r))
				bad(t, "stable SNAPSHOT: %s", errname(r));
			break;
		}
		/* -i: the fault a snapshot asked for may have been failed. */
		for (size_t i = 0; i < s->len / PAGE; i++)
			if (!state_valid(st[i]) ||
			    st[i] == SVA_SHIM_PAGE_ERROR ||
			    (sn.flags && !opt_inject &&
			     !(st[i] & SVA_SHIM_PAGE_VALID))) {
				bad(t, "stable SNAPSHOT flags %u of %s page %zu: "
				    "state %#x", sn.flags, kind_name[s->kind],
				    i, st[i]);
				break;
			}
		if (st[s->len / PAGE] != SVA_SHIM_PAGE_ERROR)
			bad(t, "stable SNAPSHOT of the PROT_NONE guard: %#x",
			    st[s->len / PAGE]);
		break;
	}
	default:	/* both, interleaved, over the whole region */
		stable_write_check(t, f, s, 0, s->len, "whole write");
		if (chance(t, 50))
			stable_bytes(t, s, &off, &len);
		fill(t, s->p + off, len);
		memcpy(s->shadow + off, s->p + off, len);
		stable_read_check(t, f, s, 0, s->len, "whole read");
		break;
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * The descriptor engine, on a context of its own: random entries over
 * the churning arena (and addresses no access reaches), then reaped, or
 * the context unbound or closed with them in flight. Each completion is
 * its entry's, bytes_done within it; unbinding completes or cancels
 * every entry before it returns.
 */
static void op_ring(struct thr *t)
{
	uint32_t entries = 1u << below(t, 7), n, i, head = 0;
	struct sva_shim_ring_setup rs = { .entries = entries, .eventfd = -1 };
	struct sva_shim_bind b = { 0 };
	struct sva_shim_ring *r;
	struct sva_shim_sqe *sq;
	struct sva_shim_cqe *cq;
	uint64_t len[64];
	void *mem;
	int fd = sva_open(t, false), end;
	bool top;

	if (fd < 0)
		return;
	set_op(t, "ring", entries, 0, 0);
	if (xioctl(fd, SVA_SHIM_IOC_BIND, &b) ||
	    judge(t, C_RING, xioctl(fd, SVA_SHIM_IOC_RING_SETUP, &rs))) {
		close(fd);
		return;
	}
	/* Ours alone: mmap(NULL) could land in the churning arena. */
	if (rs.size > RINGMEM) {
		bad(t, "ring of %u entries: %llu bytes", entries,
		    (unsigned long long)rs.size);
		close(fd);
		return;
	}
	mem = mmap(t->ringmem, rs.size, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_FIXED, fd, 0);
	if (mem == MAP_FAILED) {
		if (!injected(errno))
			bad(t, "ring mmap: %s", errname(-errno));
		unreserve_map(t->ringmem, RINGMEM);
		close(fd);
		return;
	}
	r = mem;
	sq = (void *)((char *)mem + rs.sq_off);
	cq = (void *)((char *)mem + rs.cq_off);
	n = 1 + (uint32_t)below(t, entries);
	for (i = 0; i < n; i++) {
		struct sva_shim_sqe *e = &sq[i];

		memset(e, 0, sizeof(*e));
		e->opcode = (uint8_t)below(t, 6);
		e->flags = chance(t, 70) ? SVA_SHIM_SQE_FAULT : 0;
		e->src = dev_addr(t, false, &top);
		e->dst = dev_addr(t, true, &top);
		e->len = e->opcode ? dev_len(t) : 0;
		if (e->len > 4 * SLOT && chance(t, 90))
			e->len = 1 + below(t, 4 * SLOT);
		e->pattern = rnd(t);
		e->user_data = i;
		len[i] = e->len;
	}
	__atomic_store_n(&r->sq_tail, n, __ATOMIC_RELEASE);
	count(C_RING, ioctl(fd, SVA_SHIM_IOC_RING_ENTER, chance(t, 50) ?
			    SVA_SHIM_ENTER_INLINE : 0) ? -errno : 0);
	end = (int)below(t, 4);
	if (end == 1) {
		/* Unbound: everything completed or cancelled by now. */
		if (ioctl(fd, SVA_SHIM_IOC_UNBIND))
			bad(t, "ring UNBIND: %s", errname(-errno));
		else if (__atomic_load_n(&r->cq_tail, __ATOMIC_ACQUIRE) != n)
			bad(t, "ring: %u of %u completed at UNBIND",
			    r->cq_tail, n);
	}
	if (end <= 1) {
		uint64_t t0 = now_ms();

		while (head < n && now_ms() - t0 < 60000) {
			const struct sva_shim_cqe *c = &cq[head % entries];

			if (__atomic_load_n(&r->cq_tail, __ATOMIC_ACQUIRE) ==
			    head) {
				usleep(1000);
				continue;
			}
			if (c->user_data != head || c->status > 5 ||
			    c->bytes_done > len[head] ||
			    (c->status == SVA_SHIM_STATUS_BAD &&
			     c->bytes_done) ||
			    (c->status == SVA_SHIM_STATUS_OK &&
			     c->bytes_done != len[head] &&
			     sq[head].opcode != SVA_SHIM_OP_COMPARE))
				bad(t, "ring CQE %u: user_data %llu status %u "
				    "bytes_done %llu of %llu", head,
				    (unsigned long long)c->user_data, c->status,
				    (unsigned long long)c->bytes_done,
				    (unsigned long long)len[head]);
			head++;
		}
		if (head < n)
			bad(t, "ring: %u of %u completed in 60 s", head, n);
	}
	/* else: closed with entries in flight. */
	unreserve_map(mem, rs.size);
	close(fd);
}

/* ------------------------------------------------------- device thread */

static void device_op(struct thr *t)
{
	struct target tg;
	unsigned int c = (unsigned int)below(t, 100);

	if (c < 14) {
		op_stable(t);
		return;
	}
	if (c < 17) {
		op_close(t);
		return;
	}
	if (c < 20) {
		op_poll(t);
		return;
	}
	if (c < 21) {
		op_ring(t);
		return;
	}
	if (!pick_target(t, &tg))
		return;
	if (c < 22)
		op_version(t, &tg);
	else if (c < 28)
		op_bind(t, &tg);
	else if (c < 31)
		op_unbind(t, &tg);
	else if (c < 46)
		op_access(t, &tg, false);
	else if (c < 58)
		op_access(t, &tg, true);
	else if (c < 65)
		op_snapshot(t, &tg);
	else if (c < 73)
		op_mirror(t, &tg);
	else if (c < 78)
		op_unmirror(t, &tg);
	else if (c < 83)
		op_mirror_seq(t, &tg);
	else if (c < 87)
		op_stats(t, &tg);
	else if (c < 89)
		op_context(t, &tg);
	else if (c < 92)
		op_invalid(t, &tg);
	else
		op_evread(t, &tg);
}

/* ------------------------------------------------------------ mm side */

static size_t rand_pages(struct thr *t, size_t max)
{
	return PAGE * (1 + below(t, max / PAGE));
}

/* How much of a slot the CPU may touch without a fault (SIGBUS/SEGV). */
static size_t cpu_len(const struct slot *s)
{
	if (s->kind == K_NONE || s->holes || !s->prot_rw)
		return 0;
	if (s->kind == K_ANON_SHARED)
		return s->len < s->objsize ? s->len : s->objsize;
	if (s->kind == K_MEMFD_SHARED || s->kind == K_MEMFD_PRIVATE)
		return s->len < s->fsize ? s->len : s->fsize;
	return s->len;
}

static void slot_touch(struct thr *t, struct slot *s, uint8_t *w)
{
	size_t n, len = cpu_len(s);

	if (!len)
		return;
	n = 1 + below(t, 64);
	for (size_t i = 0; i < n; i++) {
		size_t off = below(t, len);

		if (chance(t, 70))
			w[off] = (uint8_t)rnd(t);
		else
			(void)*(volatile uint8_t *)&w[off];
	}
	count(C_CPU, 0);
}

static void slot_map(struct thr *t, int i)
{
	static const int prots[] = { PROT_READ | PROT_WRITE,
		PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE,
		PROT_READ | PROT_WRITE, PROT_READ, PROT_NONE, PROT_WRITE };
	struct slot *s = &slots[i];
	int kind = 1 + (int)below(t, K_NR - 1);
	int prot = prots[below(t, sizeof(prots) / sizeof(prots[0]))];
	int flags = MAP_FIXED;
	size_t len = chance(t, 30) ? SLOT : rand_pages(t, SLOT);
	void *p;

	munmap(win(i), SLOT);
	if (chance(t, 15))
		flags |= MAP_POPULATE;
	if (chance(t, 10))
		flags |= MAP_NORESERVE;
	if (kind == K_MEMFD_SHARED || kind == K_MEMFD_PRIVATE) {
		size_t fsize = chance(t, 85) ? len : rand_pages(t, SLOT);

		/* A failed ftruncate() leaves the size as it was. */
		if (ftruncate(s->memfd, (off_t)fsize))
			count(C_FILE, -errno);
		else
			s->fsize = fsize;
		p = mmap(win(i), len, prot, flags | (kind == K_MEMFD_SHARED ?
			 MAP_SHARED : MAP_PRIVATE), s->memfd, 0);
	} else {
		p = mmap(win(i), len, prot, flags | MAP_ANONYMOUS |
			 (kind == K_ANON ? MAP_PRIVATE : MAP_SHARED), -1, 0);
	}
	count(C_MMAP, p == MAP_FAILED ? -errno : 0);
	if (p == MAP_FAILED) {
		s->kind = K_NONE;
		return;
	}
	s->kind = kind;
	s->len = len;
	s->objsize = len;
	s->holes = false;
	s->prot_rw = prot == (PROT_READ | PROT_WRITE);
	if (kind == K_ANON && chance(t, 50))
		madvise(win(i), len, chance(t, 50) ? MADV_HUGEPAGE :
			MADV_NOHUGEPAGE);
	slot_touch(t, s, win(i));
}

static void slot_sub(struct thr *t, struct slot *s, size_t *off, size_t *len)
{
	size_t span = s->kind == K_NONE || chance(t, 10) ? SLOT : s->len;

	*off = below(t, span / PAGE) * PAGE;
	*len = PAGE * (1 + below(t, (span - *off) / PAGE));
}

/* mremap a slot's mapping into another window (anon only: files stay). */
static void slot_move(struct thr *t, int i)
{
	int j = (int)below(t, NSLOTS), lo, hi;
	struct slot *a = &slots[i], *b;
	bool dontunmap;
	size_t newlen;
	void *p;

	if (j == i)
		return;
	lo = i < j ? i : j;
	hi = i < j ? j : i;
	pthread_mutex_unlock(&a->lock);
	pthread_mutex_lock(&slots[lo].lock);
	pthread_mutex_lock(&slots[hi].lock);
	b = &slots[j];
	if (a->kind != K_ANON && a->kind != K_ANON_SHARED)
		goto out;
	dontunmap = a->kind == K_ANON && chance(t, 30);
	newlen = dontunmap ? a->len : rand_pages(t, SLOT);
	set_op(t, "mremap move", (uint64_t)win(i), a->len, (uint64_t)win(j));
	p = mremap(win(i), a->len, newlen, MREMAP_MAYMOVE | MREMAP_FIXED |
		   (dontunmap ? MREMAP_DONTUNMAP : 0), win(j));
	count(C_MREMAP, p == MAP_FAILED ? -errno : 0);
	if (p == MAP_FAILED) {
		/*
		 * The target window may be unmapped even so, and the source
		 * already shrunk to newlen: touch neither.
		 */
		munmap(win(j), SLOT);
		b->kind = K_NONE;
		a->holes = true;
		goto out;
	}
	/* j: the moved mapping, nothing after it; i: empty or kept. */
	munmap(win(j) + newlen, SLOT - newlen);
	b->kind = a->kind;
	b->len = newlen;
	b->objsize = a->objsize;
	b->holes = false;
	b->prot_rw = a->prot_rw;
	if (!dontunmap) {
		munmap(win(i), SLOT);
		a->kind = K_NONE;
	}
out:
	pthread_mutex_unlock(&slots[hi].lock);
	pthread_mutex_unlock(&slots[lo].lock);
	pthread_mutex_lock(&a->lock);
}

static void slot_op(struct thr *t, int i)
{
	static const int advice[] = {
		MADV_DONTNEED, MADV_DONTNEED, MADV_PAGEOUT, MADV_PAGEOUT,
		MADV_COLD, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_FREE,
		MADV_WILLNEED, MADV_POPULATE_READ, MADV_POPULATE_WRITE,
		MADV_COLLAPSE, MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK,
		MADV_KEEPONFORK, MADV_REMOVE, MADV_NORMAL, MADV_RANDOM,
		MADV_SEQUENTIAL,
	};
	static const int prots[] = { PROT_READ | PROT_WRITE, PROT_READ,
				     PROT_NONE, PROT_WRITE, PROT_EXEC |
				     PROT_READ };
	struct slot *s = &slots[i];
	uint8_t *w = win(i);
	size_t off, len;
	int r = 0, prot;

	pthread_mutex_lock(&s->lock);
	slot_sub(t, s, &off, &len);
	s->last_op = t->op;
	s->last_arg[0] = t->arg[1];
	s->last_arg[1] = t->arg[2];
	switch (below(t, 20)) {
	case 0:
	case 1:
	case 2:
		set_op(t, "mmap", (uint64_t)w, 0, 0);
		slot_map(t, i);
		break;
	case 3:
		set_op(t, "munmap", (uint64_t)w + off, len, 0);
		r = munmap(w + off, len);
		count(C_MUNMAP, r ? -errno : 0);
		if (!off && len >= s->len)
			s->kind = K_NONE;
		else
			s->holes = true;
		break;
	case 4:
	case 5:
		prot = prots[below(t, sizeof(prots) / sizeof(prots[0]))];
		set_op(t, "mprotect", (uint64_t)w + off, len, (uint64_t)prot);
		r = mprotect(w + off, len, prot);
		count(C_MPROTECT, r ? -errno : 0);
		if (!off && len >= s->len && !s->holes && !r)
			s->prot_rw = prot == (PROT_READ | PROT_WRITE);
		else if (prot != (PROT_READ | PROT_WRITE))
			s->prot_rw = false;
		break;
	case 6:
	case 7:
	case 8:
	case 9: {
		int adv = advice[below(t, sizeof(advice) / sizeof(advice[0]))];

		set_op(t, "madvise", (uint64_t)w + off, len, (uint64_t)adv);
		r = madvise(w + off, len, adv);
		count(C_MADVISE, r ? -errno : 0);
		break;
	}
	case 10:
		if (s->kind == K_NONE)
			break;
		len = rand_pages(t, SLOT);
		if (chance(t, 50) && len < s->len) {	/* shrink */
			set_op(t, "mremap shrink", (uint64_t)w, s->len, len);
			r = mremap(w, s->len, len, 0) == MAP_FAILED ? -errno : 0;
			if (!r)
				s->len = len;
		} else if (len > s->len) {		/* grow in place */
			set_op(t, "mremap grow", (uint64_t)w, s->len, len);
			r = mremap(w, s->len, len, 0) == MAP_FAILED ? -errno : 0;
			if (!r)
				s->len = len;
		} else {
			slot_move(t, i);
			break;
		}
		count(C_MREMAP, r);
		break;
	case 11:
		set_op(t, "mlock", (uint64_t)w + off, len, 0);
		r = chance(t, 50) ? mlock(w + off, len) : munlock(w + off, len);
		count(C_MLOCK, r ? -errno : 0);
		break;
	case 12:
	case 13:
		set_op(t, "file", (uint64_t)s->memfd, off, len);
		switch (below(t, 4)) {
		case 0: {
			size_t fsize = chance(t, 50) ? s->len :
				       rand_pages(t, SLOT);

			r = ftruncate(s->memfd, (off_t)fsize);
			if (!r)
				s->fsize = fsize;
			break;
		}
		case 1:
			r = fallocate(s->memfd, FALLOC_FL_PUNCH_HOLE |
				      FALLOC_FL_KEEP_SIZE, (off_t)off,
				      (off_t)len);
			break;
		case 2:
			r = pwrite(s->memfd, &t->rng, sizeof(t->rng),
				   (off_t)off) < 0;
			if (!r && off + PAGE > s->fsize)
				s->fsize = off + PAGE;
			break;
		default:
			r = msync(w + off, len, MS_SYNC |
				  (chance(t, 50) ? MS_INVALIDATE : 0));
			break;
		}
		count(C_FILE, r ? -errno : 0);
		break;
	default:
		set_op(t, "cpu", (uint64_t)w, 0, 0);
		slot_touch(t, s, w);
		break;
	}
	s->last_op = t->op;
	s->last_arg[0] = t->arg[1];
	s->last_arg[1] = t->arg[2];
	/*
	 * -i: a failed munmap/mprotect/mremap/madvise may have done part of
	 * its work: what is mapped how is no longer known, so the CPU keeps
	 * off the slot until it is mapped afresh.
	 */
	if (opt_inject && r < 0)
		s->holes = true;
	pthread_mutex_unlock(&s->lock);
}

/*
 * A forked child: inherited /dev/sva files are the parent's (EPERM, but
 * VERSION); a file of its own works; it exits without closing anything.
 * Only async-signal-safe calls here.
 */
static void child(struct thr *t, uint64_t r)
{
	int bad_bits = 0, fd;

	if (r & 1)
		_exit(0);
	for (int i = 0; i < NSFD; i++) {
		struct sva_shim_version v;
		struct sva_shim_stats st;
		struct sva_shim_bind b = { 0 };
		struct sva_shim_access a = { .addr = (uint64_t)win(0),
			.len = PAGE, .buf = (uint64_t)t->scratch };
		uint32_t id = 1;
		char ev[EV_SIZE];

		fd = sfds[i].fd;
		if (ioctl(fd, SVA_SHIM_IOC_VERSION, &v))
			bad_bits |= 1;
		if (ioctl(fd, SVA_SHIM_IOC_STATS, &st) != -1 || errno != EPERM)
			bad_bits |= 2;
		if (ioctl(fd, SVA_SHIM_IOC_BIND, &b) != -1 || errno != EPERM)
			bad_bits |= 4;
		if (ioctl(fd, SVA_SHIM_IOC_UNBIND) != -1 || errno != EPERM)
			bad_bits |= 8;
		if (ioctl(fd, SVA_SHIM_IOC_READ, &a) != -1 || errno != EPERM)
			bad_bits |= 16;
		if (ioctl(fd, SVA_SHIM_IOC_UNMIRROR, &id) != -1 ||
		    errno != EPERM)
			bad_bits |= 32;
		if (read(fd, ev, sizeof(ev)) != -1 || errno != EPERM)
			bad_bits |= 64;
	}
	if (r & 2) {
		struct sva_shim_bind b = { 0 };
		struct sva_shim_mirror m = { .addr = (uint64_t)arena,
					     .len = NSLOTS * SLOT };
		struct sva_shim_access a = {
			.addr = (uint64_t)win((int)((r >> 8) % NSLOTS)),
			.len = 16 * PAGE, .buf = (uint64_t)t->scratch };

		fd = open("/dev/sva", O_RDWR);
		if (fd < 0 || ioctl(fd, SVA_SHIM_IOC_BIND, &b))
			_exit(bad_bits | (opt_inject ? 0 : 128));
		ioctl(fd, SVA_SHIM_IOC_MIRROR, &m);
		ioctl(fd, (r & 4) ? SVA_SHIM_IOC_WRITE : SVA_SHIM_IOC_READ, &a);
	}
	if (r & 8) {	/* CONTEXT on an inherited file: one of its own */
		struct sva_shim_bind b = { 0 };
		uint8_t mem[128] = { 1 };
		struct sva_shim_access a = {
			.addr = (uint64_t)mem + 1, .len = 63,
			.buf = (uint64_t)mem + 64 };

		fd = ioctl(sfds[(r >> 4) % NSFD].fd, SVA_SHIM_IOC_CONTEXT, 0);
		if (fd < 0 || ioctl(fd, SVA_SHIM_IOC_BIND, &b) ||
		    ioctl(fd, SVA_SHIM_IOC_READ, &a) ||
		    (a.status && !opt_inject))
			_exit(bad_bits | (opt_inject ? 0 : 128));
	}
	_exit(bad_bits);	/* no close, no unbind */
}

static void mm_fork(struct thr *t)
{
	uint64_t r = rnd(t);
	int status;
	pid_t pid;

	set_op(t, "fork", r, 0, 0);
	pid = fork();
	count(C_FORK, pid < 0 ? -errno : 0);
	if (pid < 0)
		return;
	if (!pid)
		child(t, r);
	set_op(t, "waitpid", (uint64_t)pid, r, 0);
	if (waitpid(pid, &status, 0) != pid) {
		bad(t, "waitpid: %s", errname(-errno));
		return;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		bad(t, "forked child (mode %#llx): status %#x (bits: 1 VERSION, "
		    "2 STATS, 4 BIND, 8 UNBIND, 16 READ, 32 UNMIRROR, 64 "
		    "read(), 128 own file or context)",
		    (unsigned long long)(r & 15),
		    status);
}

static void mm_op(struct thr *t)
{
	unsigned int c = (unsigned int)below(t, 100);

	if (c < 4) {
		mm_fork(t);
	} else if (c < 8) {
		int n = 0, idx[MAXTHREADS];

		for (int i = 0; i < opt_threads; i++)
			if (!thr[i].mm && !thr[i].done)
				idx[n++] = i;
		if (n) {
			set_op(t, "signal", 0, 0, 0);
			count(C_SIGNAL, pthread_kill(thr[idx[below(t,
						(uint64_t)n)]].tid, SIGUSR1));
		}
	} else {
		slot_op(t, (int)below(t, NSLOTS));
	}
}

static void *thread_main(void *arg)
{
	struct thr *t = arg;

	t->ktid = gettid();
	pthread_barrier_wait(&start_line);
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		t->ops++;
		if (t->mm)
			mm_op(t);
		else
			device_op(t);
	}
	set_op(t, "closing", 0, 0, 0);
	for (int i = 0; i < NPFD; i++)
		if (t->pfd[i].fd >= 0)
			pfd_close(t, &t->pfd[i]);
	t->op = "done";
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* ------------------------------------------------------------- set-up */

static void on_signal(int sig)
{
	(void)sig;
}

/* A crash of the fuzzer itself: say where, and doing what. */
static void on_crash(int sig, siginfo_t *si, void *uc)
{
	pid_t me = gettid();
	char buf[256];
	int n;

	(void)uc;
	for (int i = 0; i < opt_threads; i++)
		if (thr[i].ktid == me) {
			n = snprintf(buf, sizeof(buf), "fuzz: CRASH: signal %d at "
				     "%p in thread %d, %s (%#llx, %#llx, %#llx), "
				     "seed %llu\n", sig, si->si_addr, i,
				     thr[i].op, (unsigned long long)thr[i].arg[0],
				     (unsigned long long)thr[i].arg[1],
				     (unsigned long long)thr[i].arg[2],
				     (unsigned long long)opt_seed);
			if (write(1, buf, (size_t)n) < 0)
				break;
		}
	if ((uint8_t *)si->si_addr >= arena &&
	    (uint8_t *)si->si_addr < win(NSLOTS)) {
		struct slot *s = &slots[((uint8_t *)si->si_addr - arena) / SLOT];

		n = snprintf(buf, sizeof(buf), "fuzz: CRASH: slot kind %d len "
			     "%#zx holes %d rw %d fsize %#zx objsize %#zx, last "
			     "%s (%#llx, %#llx)\n", s->kind, s->len, s->holes,
			     s->prot_rw, s->fsize, s->objsize, s->last_op,
			     (unsigned long long)s->last_arg[0],
			     (unsigned long long)s->last_arg[1]);
		if (write(1, buf, (size_t)n) < 0)
			_exit(4);
	}
	n = snprintf(buf, sizeof(buf), "fuzz: CRASH: signal %d at %p (tid %d)\n",
		     sig, si->si_addr, me);
	if (write(1, buf, (size_t)n) < 0)
		_exit(4);
	_exit(4);
}

static int memfd(const char *name, size_t size)
{
	int fd = RETRY_INT(memfd_create(name, MFD_CLOEXEC));

	if (fd < 0 || RETRY_INT(ftruncate(fd, (off_t)size))) {
		perror("fuzz: memfd");
		exit(3);
	}
	return fd;
}

static void setup_stable(struct thr *t)
{
	static const int kinds[NSTABLE] = { K_ANON, K_ANON_SHARED,
					    K_MEMFD_SHARED, K_ANON };

	for (int k = 0; k < NSTABLE; k++) {
		struct stable *s = &t->st[k];
		/* The last: a 2 MiB aligned region, THP where it is on. */
		size_t len = k == NSTABLE - 1 ? HUGE : 16 * PAGE;
		size_t resv = len + (k == NSTABLE - 1 ? HUGE : 0) + PAGE;
		uint8_t *r = RETRY_MMAP(NULL, resv, PROT_NONE, MAP_PRIVATE |
					MAP_ANONYMOUS, -1, 0);

		if (r == MAP_FAILED) {
			perror("fuzz: mmap");
			exit(3);
		}
		s->kind = kinds[k];
		s->len = len;
		s->memfd = s->kind == K_MEMFD_SHARED ? memfd("stable", len) : -1;
		s->p = (uint8_t *)(((uintptr_t)r + (k == NSTABLE - 1 ?
						    HUGE - 1 : 0)) &
				   ~(uintptr_t)(k == NSTABLE - 1 ? HUGE - 1 : 0));
		if (RETRY_INT(munmap(s->p, len)) ||
		    stable_map(s->kind, s->memfd, s->p, len, 0) != s->p) {
			perror("fuzz: stable mmap");
			exit(3);
		}
		if (k == NSTABLE - 1)
			madvise(s->p, len, MADV_HUGEPAGE);
		s->shadow = guarded(len);
		fill(t, s->p, len);
		memcpy(s->shadow, s->p, len);
	}
}

static void setup(void)
{
	struct sigaction sa;
	uint8_t *r;
	size_t resv = NSLOTS * SLOT + 3 * GUARD;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: interrupt reads */
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = NULL;
	sa.sa_sigaction = on_crash;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);

	/* 5-level paging: user space reaches past 47 bits. */
	r = mmap((void *)(1ull << 47), PAGE, PROT_NONE, MAP_PRIVATE |
		 MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (r == (void *)(1ull << 47)) {
		user_top = (1ull << 56) - PAGE;
		munmap(r, PAGE);
	}
	printf("fuzz: user space ends at %#llx\n",
	       (unsigned long long)user_top);

	/* The arena: 2 MiB aligned windows between PROT_NONE guards. */
	r = RETRY_MMAP(NULL, resv, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
		       MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED) {
		perror("fuzz: arena");
		exit(3);
	}
	arena = (uint8_t *)(((uintptr_t)r + GUARD + HUGE - 1) &
			    ~(uintptr_t)(HUGE - 1));
	for (int i = 0; i < NSLOTS; i++) {
		pthread_mutex_init(&slots[i].lock, NULL);
		slots[i].memfd = memfd("slot", SLOT);
		slots[i].fsize = SLOT;
		slots[i].kind = K_NONE;
	}

	/* Read-only argument pages: zero, an access and a mirror request. */
	ro_zero = guarded(3 * PAGE);
	ro_access = ro_zero + PAGE;
	ro_mirror = ro_zero + 2 * PAGE;
	*(struct sva_shim_access *)ro_access = (struct sva_shim_access){
		.addr = (uint64_t)win(0), .len = PAGE,
		.buf = (uint64_t)win(1) };
	*(struct sva_shim_mirror *)ro_mirror = (struct sva_shim_mirror){
		.addr = (uint64_t)win(0), .len = PAGE };
	if (RETRY_INT(mprotect(ro_zero, 3 * PAGE, PROT_READ))) {
		perror("fuzz: mprotect");
		exit(3);
	}

	for (int i = 0; i < NSFD; i++) {
		struct sva_shim_bind b = { 0 };

		pthread_mutex_init(&sfds[i].lock, NULL);
		sfds[i].fd = RETRY_INT(open("/dev/sva", O_RDWR | O_NONBLOCK |
					    O_CLOEXEC));
		if (sfds[i].fd < 0) {
			perror("fuzz: /dev/sva");
			exit(3);
		}
		if (i % 2 == 0)
			ioctl(sfds[i].fd, SVA_SHIM_IOC_BIND, &b);
	}

	for (int i = 0; i < opt_threads; i++) {
		struct thr *t = &thr[i];
		uint64_t s = opt_seed ^ (0x5851f42d4c957f2dull * (uint64_t)(i + 1));

		t->idx = i;
		t->rng = splitmix(&s);
		/* Thread 0 and every third: mm; the rest drive the device. */
		t->mm = i % 3 == 0;
		for (int k = 0; k < NPFD; k++)
			t->pfd[k].fd = -1;
		t->op = "start";
		if (t->mm)
			continue;
		t->scratch = guarded(SCRATCH);
		t->iob = guarded(HUGE);
		t->ringmem = reserved(RINGMEM);
		setup_stable(t);
	}
	/*
	 * First mappings, from thread 0's generator. From here on nothing
	 * but the mm threads maps memory: no mmap(NULL) may land in a window
	 * left unmapped.
	 */
	for (int i = 0; i < NSLOTS; i++) {
		pthread_mutex_lock(&slots[i].lock);
		slot_map(&thr[0], i);
		pthread_mutex_unlock(&slots[i].lock);
	}
}

static int set_param(const char *name, unsigned int val)
{
	char path[128], buf[16];
	int fd, n;

	snprintf(path, sizeof(path), "/sys/module/sva_shim/parameters/%s",
		 name);
	fd = RETRY_INT(open(path, O_WRONLY));
	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%u", val);
	n = (int)RETRY_INT(write(fd, buf, (size_t)n));
	close(fd);
	return n > 0 ? 0 : -1;
}

static long get_param(const char *name)
{
	char path[128], buf[32] = "";
	int fd;

	snprintf(path, sizeof(path), "/sys/module/sva_shim/parameters/%s",
		 name);
	fd = RETRY_INT(open(path, O_RDONLY));
	if (fd < 0)
		return -1;
	if (read(fd, buf, sizeof(buf) - 1) <= 0)
		buf[0] = 0;
	close(fd);
	return buf[0] ? atol(buf) : -1;
}

/*
 * The bounds on what a user can make the module allocate, once every file
 * is closed (the per-user count is then 0): max_mirrors_per_context gives
 * -ENOSPC, max_contexts_per_user -EMFILE to open() and CONTEXT alike.
 * Under -i, an injected failure ends the check early.
 */
static void check_limits(void)
{
	long mm = get_param("max_mirrors_per_context");
	long mc = get_param("max_contexts_per_user");
	struct sva_shim_bind b = { 0 };
	int fd = -1, fd2 = -1, fd3 = -1, r;
	uint32_t ids[4];
	int i;

	if (mm < 0 || mc < 0)
		return;
	count(C_LIMITS, 0);
	fd = RETRY_INT(open("/dev/sva", O_RDWR | O_CLOEXEC));
	if (fd < 0) {
		if (!injected(-errno))
			bad(NULL, "limits: open: %s", errname(-errno));
		return;
	}
	r = xioctl(fd, SVA_SHIM_IOC_BIND, &b);
	if (r) {
		if (!injected(r))
			bad(NULL, "limits: BIND: %s", errname(r));
		goto out;
	}
	set_param("max_mirrors_per_context", 3);
	for (i = 0; i < 4; i++) {
		struct sva_shim_mirror m = { .addr = (uint64_t)arena +
					     (uint64_t)i * PAGE, .len = PAGE };

		r = xioctl(fd, SVA_SHIM_IOC_MIRROR, &m);
		ids[i] = m.id;
		if (r && injected(r))
			break;
		if ((i < 3 && r) || (i == 3 && r != -ENOSPC)) {
			bad(NULL, "limits: MIRROR %d of 3 allowed: %s", i + 1,
			    errname(r));
			break;
		}
	}
	if (i == 4) {	/* room again once one goes */
		struct sva_shim_mirror m = { .addr = (uint64_t)arena,
					     .len = PAGE };

		r = xioctl(fd, SVA_SHIM_IOC_UNMIRROR, &ids[0]);
		if (!r)
			r = xioctl(fd, SVA_SHIM_IOC_MIRROR, &m);
		if (r && !injected(r))
			bad(NULL, "limits: MIRROR after an UNMIRROR at the "
			    "limit: %s", errname(r));
	}
	set_param("max_mirrors_per_context", (unsigned int)mm);

	set_param("max_contexts_per_user", 2);
	fd2 = ioctl(fd, SVA_SHIM_IOC_CONTEXT, 0);
	r = fd2 < 0 ? -errno : 0;
	if (r) {
		if (!injected(r))
			bad(NULL, "limits: CONTEXT, 2nd of 2: %s", errname(r));
		goto restore;
	}
	fd3 = open("/dev/sva", O_RDWR | O_CLOEXEC);
	r = fd3 < 0 ? -errno : 0;
	if (r != -EMFILE && !(r && injected(r)))
		bad(NULL, "limits: open, 3rd of 2: %s", errname(r));
	if (fd3 >= 0)
		close(fd3);
	fd3 = ioctl(fd2, SVA_SHIM_IOC_CONTEXT, 0);
	r = fd3 < 0 ? -errno : 0;
	if (r != -EMFILE && !(r && injected(r)))
		bad(NULL, "limits: CONTEXT, 3rd of 2: %s", errname(r));
	if (fd3 >= 0)
		close(fd3);
	close(fd2);	/* its count goes with it */
	fd2 = ioctl(fd, SVA_SHIM_IOC_CONTEXT, 0);
	r = fd2 < 0 ? -errno : 0;
	if (r && !injected(r))
		bad(NULL, "limits: CONTEXT after a close at the limit: %s",
		    errname(r));
restore:
	set_param("max_contexts_per_user", (unsigned int)mc);
	if (fd2 >= 0)
		close(fd2);
out:
	close(fd);
}

static long live_objects(void)
{
	char buf[32] = "";
	int fd = open("/sys/module/sva_shim/parameters/live_objects", O_RDONLY);

	if (fd < 0)
		return -1;
	if (read(fd, buf, sizeof(buf) - 1) < 0)
		buf[0] = 0;
	close(fd);
	return atol(buf);
}

static void inject(unsigned int pct)
{
	static const char *const p[] = { "alloc_prob", "fault_prob",
					 "bind_prob", "pasid_prob" };

	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
		if (set_param(p[i], pct) && pct)
			printf("fuzz: can't set %s\n", p[i]);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void cat(const char *path, const char *prefix)
{
	char buf[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		printf("%s%s\n", prefix, line);
}

/* Threads still running past the bound: say where they are. */
static void dump_hang(void)
{
	char path[96];

	printf("fuzz: HANG: threads still running after the deadline "
	       "(seed %" PRIu64 ")\n", opt_seed);
	for (int i = 0; i < opt_threads; i++) {
		struct thr *t = &thr[i];

		if (t->done)
			continue;
		printf("fuzz: thread %d (tid %d, %s) in %s (%#llx, %#llx, "
		       "%#llx) after %lu ops\n", i, t->ktid,
		       t->mm ? "mm" : "device", t->op,
		       (unsigned long long)t->arg[0],
		       (unsigned long long)t->arg[1],
		       (unsigned long long)t->arg[2], t->ops);
		snprintf(path, sizeof(path), "/proc/self/task/%d/wchan",
			 t->ktid);
		cat(path, "fuzz:   wchan ");
		snprintf(path, sizeof(path), "/proc/self/task/%d/stack",
			 t->ktid);
		cat(path, "fuzz:   ");
	}
}

static void report(double secs)
{
	unsigned long total = 0;

	for (int c = 0; c < C_NR; c++) {
		char line[1024];
		int n = 0;

		for (int e = 0; e < NERR; e++) {
			if (!counts[c][e])
				continue;
			total += counts[c][e];
			n += snprintf(line + n, sizeof(line) - (size_t)n, " %s=%lu",
				      errname(e), counts[c][e]);
			if (n >= (int)sizeof(line) - 32)
				break;
		}
		if (n)
			printf("fuzz: %-16s%s\n", cmd_name[c], line);
	}
	for (int w = 0; w < 2; w++)
		printf("fuzz: %s status: ok=%lu page_fault=%lu invalid=%lu "
		       "failure=%lu\n", w ? "WRITE" : "READ",
		       status_counts[w][0], status_counts[w][1],
		       status_counts[w][2], status_counts[w][3]);
	printf("fuzz: seed %" PRIu64 ", %d threads, %.1f s, %lu operations, "
	       "%d unexpected\n", opt_seed, opt_threads, secs, total, nbad);
}

/* ------------------------------------------------------ reproducers */

struct repro {
	const char *name;
	const char *what;
	int (*fn)(void);
};

/*
 * A mirror registered while some other invalidation of the mm is in flight
 * is only put in the kernel's interval tree when that one ends
 * (mmu_notifier's deferred insertion; read_begin() would wait for it). An
 * invalidation of the mirror's range in between runs no callback of it:
 * its sequence stays 0 and no record is queued, though the range was
 * invalidated after MIRROR returned. libsva's kmod read_begin/read_retry
 * builds on that sequence: it accepts a stale snapshot, and no callback
 * is ever told. A thread forking a process with 32 MiB populated keeps
 * invalidations in flight; a handful of 2000 rounds miss (0 with an
 * mmu_interval_read_begin() on the new notifier before MIRROR returns).
 */
static volatile int churn_stop;

/* fork(): write-protects every private page, then COW faults: churn. */
static void *churn(void *arg)
{
	(void)arg;
	while (!churn_stop) {
		pid_t pid = fork();

		if (!pid)
			_exit(0);
		if (pid > 0)
			waitpid(pid, NULL, 0);
	}
	return NULL;
}

static int repro_mirror_deferred(void)
{
	size_t len = 32ul << 20;
	uint8_t *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE |
			  MAP_ANONYMOUS, -1, 0);
	uint8_t *r = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct sva_shim_bind bind = { 0 };
	int fd = open("/dev/sva", O_RDWR), missed = 0, rounds = 2000;
	pthread_t tid;

	if (fd < 0 || b == MAP_FAILED || r == MAP_FAILED ||
	    ioctl(fd, SVA_SHIM_IOC_BIND, &bind)) {
		perror("fuzz: repro set-up");
		return 0;
	}
	madvise(b, len, MADV_NOHUGEPAGE);
	madvise(b, len, MADV_POPULATE_WRITE);
	pthread_create(&tid, NULL, churn, NULL);
	for (int i = 0; i < rounds; i++) {
		struct sva_shim_mirror m = { .addr = (uint64_t)r,
					     .len = 16 * PAGE };

		if (ioctl(fd, SVA_SHIM_IOC_MIRROR, &m)) {
			perror("fuzz: MIRROR");
			break;
		}
		int mr;

		memset(r, i, 16 * PAGE);		/* populated */
		mr = madvise(r, 16 * PAGE, MADV_DONTNEED);	/* invalidated */
		if (ioctl(fd, SVA_SHIM_IOC_MIRROR_SEQ, &m)) {
			perror("fuzz: MIRROR_SEQ");
		} else if (!m.seq && !missed++) {
			uint64_t s1;

			madvise(r, 16 * PAGE, MADV_DONTNEED);
			ioctl(fd, SVA_SHIM_IOC_MIRROR_SEQ, &m);
			s1 = m.seq;
			usleep(100000);
			madvise(r, 16 * PAGE, MADV_DONTNEED);
			ioctl(fd, SVA_SHIM_IOC_MIRROR_SEQ, &m);
			printf("fuzz: round %d: mirror %u [%p +%#x] seq 0 "
			       "after MADV_DONTNEED (%d) of its whole range; "
			       "again at once: %llu, 100 ms later: %llu\n", i,
			       m.id, (void *)r, (unsigned int)(16 * PAGE), mr,
			       (unsigned long long)s1,
			       (unsigned long long)m.seq);
		}
		ioctl(fd, SVA_SHIM_IOC_UNMIRROR, &m.id);
	}
	churn_stop = 1;
	pthread_join(tid, NULL);
	printf("fuzz: %d of %d mirrors saw no invalidation of a DONTNEED of "
	       "their range\n", missed, rounds);
	close(fd);
	munmap(b, len);
	munmap(r, 16 * PAGE);
	return missed;
}

static const struct repro repros[] = {
	{ "mirror_deferred", "a mirror registered during another "
	  "invalidation misses the invalidations until that one ends",
	  repro_mirror_deferred },
	{ NULL, NULL, NULL },
};

static int run_repro(const char *name)
{
	for (const struct repro *r = repros; r->name; r++)
		if (!strcmp(r->name, name)) {
			int ret;

			printf("fuzz: reproducer %s: %s\n", r->name, r->what);
			ret = r->fn();
			printf("fuzz: reproducer %s: %s\n", r->name,
			       ret ? "REPRODUCED" : "not reproduced");
			return ret ? 1 : 0;
		}
	fprintf(stderr, "fuzz: no reproducer %s; there are:", name);
	for (const struct repro *r = repros; r->name; r++)
		fprintf(stderr, " %s", r->name);
	fprintf(stderr, "\n");
	return 3;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [-d seconds] [-s seed] [-t threads] [-i percent] "
		"[-f] [-r reproducer] [-v]\n"
		"  -d  run this long, then stop (default 60)\n"
		"  -s  seed (default: from the clock; printed to replay)\n"
		"  -t  threads, 2..%d (default 4): thread 0 and every third "
		"one do mm operations, the rest drive /dev/sva\n"
		"  -i  module fault injection: fail this percent of "
		"allocations, faults, binds\n"
		"  -f  once set up, write 1 to /proc/self/make-it-fail (the "
		"kernel's\n      task-filtered fault injection; with -i)\n"
		"  -r  run one minimal reproducer instead\n", argv0,
		MAXTHREADS);
	exit(3);
}

int main(int argc, char **argv)
{
	double t0, deadline;
	bool hang = false;
	long live = -1;
	int o;

	setvbuf(stdout, NULL, _IOLBF, 0);
	opt_seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	while ((o = getopt(argc, argv, "d:s:t:i:r:fvh")) != -1) {
		switch (o) {
		case 'd': opt_secs = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 's': opt_seed = strtoull(optarg, NULL, 0); break;
		case 't': opt_threads = atoi(optarg); break;
		case 'i': opt_inject = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 'r': opt_repro = optarg; break;
		case 'f': opt_fail_self = true; break;
		case 'v': opt_verbose++; break;
		default: usage(argv[0]);
		}
	}
	if (opt_threads < 2 || opt_threads > MAXTHREADS || opt_inject > 100)
		usage(argv[0]);
	if (opt_repro)
		return run_repro(opt_repro);

	have_module_params = live_objects() >= 0;
	printf("fuzz: seed %" PRIu64 " threads %d duration %u s inject %u%% "
	       "(replay: sva-fuzz -s %" PRIu64 " -t %d -d %u%s)\n", opt_seed,
	       opt_threads, opt_secs, opt_inject, opt_seed, opt_threads,
	       opt_secs, opt_inject ? " -i N" : "");
	setup();
	if (opt_inject)
		inject(opt_inject);
	/*
	 * The kernel's task-filtered fault injection for us from here on,
	 * and for every thread and child we start: not for our exec (which
	 * the kernel fails with SIGSEGV past its point of no return) nor
	 * the set-up, which -i retries but can't do without.
	 */
	if (opt_fail_self) {
		int fd = open("/proc/self/make-it-fail", O_WRONLY);

		if (fd < 0 || write(fd, "1", 1) != 1) {
			perror("fuzz: /proc/self/make-it-fail");
			exit(3);
		}
		close(fd);
	}
	pthread_barrier_init(&start_line, NULL, (unsigned int)opt_threads + 1);
	for (int i = 0; i < opt_threads; i++) {
		int e, tries = 0;

		/* -i: its stack's mmap or the clone may be failed: again. */
		while ((e = pthread_create(&thr[i].tid, NULL, thread_main,
					   &thr[i])) && opt_inject &&
		       (e == EAGAIN || e == ENOMEM) && tries++ < 10000)
			usleep(100);
		if (e) {
			fprintf(stderr, "fuzz: pthread_create: %s\n",
				strerror(e));
			exit(3);
		}
	}
	pthread_barrier_wait(&start_line);
	t0 = now_s();
	deadline = t0 + opt_secs;
	for (double next = t0 + 10; now_s() < deadline;) {
		usleep(100000);
		if (now_s() >= next) {
			unsigned long ops = 0;

			for (int i = 0; i < opt_threads; i++)
				ops += thr[i].ops;
			printf("fuzz: %.0f s, %lu operations, %d unexpected\n",
			       now_s() - t0, ops, nbad);
			next += 10;
		}
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);

	/*
	 * The bound is hard: a thread not back in time is stuck. The mm
	 * threads first: they signal device threads, which must exist.
	 */
	for (int pass = 0; pass < 2 && !hang; pass++)
		for (int i = 0; i < opt_threads; i++) {
			struct timespec ts;

			if (thr[i].mm != !pass)
				continue;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 60;
			if (!pthread_timedjoin_np(thr[i].tid, NULL, &ts))
				continue;
			hang = true;
			break;
		}
	if (hang) {
		dump_hang();
		report(now_s() - t0);
		fflush(stdout);
		_exit(2);
	}
	if (opt_inject)
		inject(0);
	for (int i = 0; i < NSFD; i++)
		close(sfds[i].fd);
	if (have_module_params)
		check_limits();
	/* Every file closed, every child reaped: the module holds nothing. */
	if (have_module_params) {
		for (int i = 0; i < 50 && (live = live_objects()) != 0; i++)
			usleep(100000);
		if (live)
			bad(NULL, "live_objects is %ld after every file closed",
			    live);
	}
	report(now_s() - t0);
	return nbad ? 1 : 0;
}
