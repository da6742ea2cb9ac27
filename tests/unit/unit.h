/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/* Shared helpers of the libsva unit tests (Check). */
#ifndef SVA_UNIT_H
#define SVA_UNIT_H

#include <check.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sva/sva.h"

#define PAGE 4096ul

/* Each suite file provides one of these. */
Suite *api_suite(void);
Suite *work_suite(void);
Suite *faults_suite(void);
Suite *mirror_suite(void);
Suite *lifecycle_suite(void);
Suite *callback_suite(void);
Suite *fork_suite(void);
Suite *threads_suite(void);
Suite *cancel_suite(void);
Suite *regress_dev_suite(void);
Suite *coherence_suite(void);
Suite *unbind_suite(void);
Suite *reserved_suite(void);
Suite *trace_suite(void);
Suite *migrate_suite(void);
Suite *exclusive_suite(void);
Suite *inline_suite(void);
Suite *fault_around_suite(void);
Suite *pipeline_suite(void);
Suite *fastpath_suite(void);
Suite *print_hook_suite(void);

/*
 * Built with AddressSanitizer (sva-unit-asan). GCC 12's sanitizer runtime
 * takes no allocator lock around fork(): a child that allocates while a
 * parent's thread (a library thread included) was inside the allocator
 * hangs in it. Children of the ASan build touch only inherited handles,
 * which allocate nothing; the plain suite and kmod0 run the rest.
 */
#ifdef SVA_ASAN_BUILD
#define ASAN_RUNTIME 1
#else
#define ASAN_RUNTIME 0
#endif

/*
 * fork(), its failure asserted in the parent only: a child calls nothing
 * of Check's, whose lock another thread of the test may have held at the
 * fork() (it hung a child once: test_inline_fork_child_eperm).
 */
static inline pid_t test_fork(void)
{
	pid_t pid = fork();

	if (pid)
		ck_assert_int_ge(pid, 0);
	return pid;
}

/* A fixture binding on a sim device; set up by open_bind(). */
struct fixture {
	struct sva_dev *dev;
	struct sva_bind *bind;
	uint32_t pasid;
};

/*
 * The device the generic tests run on: $SVA_TEST_DEVICE, else "sim0".
 * The VM tests run them on "kmod0" (sva_shim.ko).
 */
const char *test_device(void);
bool test_on_sim(void);
/*
 * The device is a VFIO one (vfio0: QEMU's edu behind an IOMMU container):
 * test_on_vfio() by its backend, without opening it; dev_is_vfio() by the
 * caps of an open one (only a VFIO device names its container). Such a
 * device has no PASID/ATS/PRI, no device memory, is opened by one process
 * at a time, and moves 2 KiB per ~100 ms of a VM's time.
 */
bool test_on_vfio(void);
bool dev_is_vfio(const struct sva_dev *dev);
/* Say why @test doesn't apply on this device ("# ... skipped ..."); true. */
bool test_skip(const char *test, const char *why);
/* A test's buffer size @len, made small on a vfio device (1/1024, at
 * least 2 KiB, one edu transfer, never more than @len): the same
 * assertions on less DMA. */
size_t test_len(size_t len);
/* How long a test waits for one small descriptor before calling it hung:
 * 5 s, 60 s on a vfio device. */
int test_wait_ms(void);
#define MIN_LEN(a, b) ((a) < (b) ? (a) : (b))
#define MAX_LEN(a, b) ((a) > (b) ? (a) : (b))

void open_bind(struct fixture *f, const struct sva_dev_opts *opts);
void close_bind(struct fixture *f);

/* Anonymous private memory, never touched (no page present). */
void *map_fresh(size_t len, int prot);
/* Anonymous memory filled with a pattern derived from @seed. */
void *map_filled(size_t len, unsigned int seed);
void fill_pattern(void *p, size_t len, unsigned int seed);
/* Pages of [p, p + len) present in the CPU page table. */
unsigned int pages_present(const void *p, size_t len);
/*
 * Anonymous memory the kernel maps in base pages only (MADV_NOHUGEPAGE on
 * the VMA, which also keeps it from merging with its neighbours): for tests
 * whose expectations count single pages under any THP/mTHP policy.
 */
void *map_fresh_small(size_t len, int prot);

/*
 * What the kernel did, from /proc/self/pagemap (and /proc/kpageflags where
 * readable): tests derive their expectations from these, never from one
 * kernel's fault policy (zero page or not, THP always/madvise/never).
 */
#define PM_PRESENT_BIT (1ull << 63)
#define PM_EXCLUSIVE_BIT (1ull << 56)
#define PM_PFN_MASK ((1ull << 55) - 1)
uint64_t pagemap_entry(const void *p);
/* 1: the shared zero page is mapped at @p, 0: not, -1: can't tell. */
int page_is_zero_page(const void *p);
/* 1: @p is mapped by a transparent huge page, 0: not, -1: can't tell. */
int page_is_thp(const void *p);
/*
 * The snapshot state (enum sva_page_state) a present page of a private
 * anonymous read/write mapping must have: VALID, plus WRITE unless the PTE
 * can't be writable (zero page, or shared with another mapping, COW).
 */
unsigned int anon_rw_state(const void *p);

struct sva_desc desc_make(const struct fixture *f, uint32_t op, uint32_t flags,
			  const void *src, const void *dst, uint64_t len);
/* Submit one descriptor and wait for its completion (test_wait_ms()). */
struct sva_completion run1(struct fixture *f, const struct sva_desc *d);
struct sva_stats bind_stats(struct fixture *f);

/*
 * A race loop runs its full count, or stops after RACE_SECONDS once it
 * has done RACE_MIN rounds: in the TCG test VM (unit suites on sim0 under
 * three THP modes) full counts cost minutes; every assertion still holds
 * for the rounds run, and each test prints how many ran.
 */
enum { RACE_MIN = 20, RACE_SECONDS = 3 };
uint64_t race_now_s(void);
bool race_over(uint64_t t0, unsigned int done);

/*
 * A CPU thread that writes, pass after pass, its pass count into the first
 * word of each of @pages pages at @p, counting a word that isn't the last
 * pass's count as lost. @rounds is counted before the pass writes it (an
 * atomic add and a full fence: neither the compiler nor the CPU puts a
 * page's store before it), so a value another thread reads from a page,
 * then reads @rounds, is never above it. Start with race_writer_fn, stop
 * with @stop.
 */
struct race_writer {
	uint64_t *p;
	unsigned int pages;
	atomic_uint rounds;
	atomic_bool stop;
	unsigned int lost;
};
void *race_writer_fn(void *arg);

#endif /* SVA_UNIT_H */
