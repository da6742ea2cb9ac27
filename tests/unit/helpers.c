// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

const char *test_device(void)
{
	const char *dev = getenv("SVA_TEST_DEVICE");

	return dev && *dev ? dev : "sim0";
}

bool test_on_sim(void)
{
	return !strncmp(test_device(), "sim", 3);
}

void open_bind(struct fixture *f, const struct sva_dev_opts *opts)
{
	ck_assert_int_eq(sva_dev_open(test_device(), opts, &f->dev), 0);
	ck_assert_int_eq(sva_bind(f->dev, NULL, &f->bind), 0);
	ck_assert_int_eq(sva_bind_pasid(f->bind, &f->pasid), 0);
}

void close_bind(struct fixture *f)
{
	if (f->bind)
		ck_assert_int_eq(sva_unbind(f->bind), 0);
	sva_dev_close(f->dev);
	f->bind = NULL;
	f->dev = NULL;
}

void *map_fresh(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

void fill_pattern(void *p, size_t len, unsigned int seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
}

void *map_filled(size_t len, unsigned int seed)
{
	void *p = map_fresh(len, PROT_READ | PROT_WRITE);

	fill_pattern(p, len, seed);
	return p;
}

unsigned int pages_present(const void *p, size_t len)
{
	uint64_t start = (uintptr_t)p / PAGE, n = (len + PAGE - 1) / PAGE;
	unsigned int present = 0;
	uint64_t e;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	ck_assert_int_ge(fd, 0);
	for (uint64_t i = 0; i < n; i++) {
		ck_assert_int_eq(pread(fd, &e, 8, (off_t)((start + i) * 8)), 8);
		present += (unsigned int)(e >> 63);
	}
	close(fd);
	return present;
}

void *map_fresh_small(size_t len, int prot)
{
	void *p = map_fresh(len, prot);

	/* EINVAL: a kernel without THP, where every page is small anyway. */
	ck_assert(!madvise(p, len, MADV_NOHUGEPAGE) || errno == EINVAL);
	return p;
}

uint64_t pagemap_entry(const void *p)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e = 0;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &e, 8, (off_t)((uintptr_t)p / PAGE * 8)), 8);
	close(fd);
	return e;
}

/* /proc/kpageflags of the page at @p: -1 when the PFN is hidden from us. */
static int64_t kpageflags_of(const void *p)
{
	uint64_t e = pagemap_entry(p), pfn = e & PM_PFN_MASK, flags;
	int fd;

	if (!(e & PM_PRESENT_BIT) || !pfn)
		return -1;	/* not present, or no CAP_SYS_ADMIN */
	fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (pread(fd, &flags, 8, (off_t)(pfn * 8)) != 8)
		flags = UINT64_MAX;
	close(fd);
	return flags == UINT64_MAX ? -1 : (int64_t)(flags & INT64_MAX);
}

#define KPF_THP 22
#define KPF_ZERO_PAGE 24

int page_is_zero_page(const void *p)
{
	int64_t f = kpageflags_of(p);

	return f < 0 ? -1 : !!(f & (1ll << KPF_ZERO_PAGE));
}

int page_is_thp(const void *p)
{
	int64_t f = kpageflags_of(p);

	return f < 0 ? -1 : !!(f & (1ll << KPF_THP));
}

unsigned int anon_rw_state(const void *p)
{
	uint64_t e = pagemap_entry(p);
	int zero = page_is_zero_page(p);

	ck_assert_msg(e & PM_PRESENT_BIT, "page %p not present", p);
	/* The zero page is never mapped exclusively, nor is a COW page. */
	if (zero == 1 || !(e & PM_EXCLUSIVE_BIT))
		return SVA_PAGE_VALID;
	return SVA_PAGE_VALID | SVA_PAGE_WRITE;
}

struct sva_desc desc_make(const struct fixture *f, uint32_t op, uint32_t flags,
			  const void *src, const void *dst, uint64_t len)
{
	struct sva_desc d = {
		.opcode = op, .flags = flags, .pasid = f->pasid,
		.src = (uintptr_t)src, .dst = (uintptr_t)dst, .len = len,
		.user_data = 0x5a5a,
	};

	return d;
}

struct sva_completion run1(struct fixture *f, const struct sva_desc *d)
{
	struct sva_completion c;

	memset(&c, 0xee, sizeof(c));
	ck_assert_int_eq(sva_submit(f->bind, d, 1), 1);
	ck_assert_int_eq(sva_wait(f->bind, &c, 1, 1, test_wait_ms()), 1);
	ck_assert_uint_eq(c.user_data, d->user_data);
	return c;
}

struct sva_stats bind_stats(struct fixture *f)
{
	struct sva_stats s = { .sz = sizeof(s) };

	ck_assert_int_eq(sva_bind_stats(f->bind, &s), 0);
	return s;
}

bool test_on_vfio(void)
{
	static int on = -1;
	struct sva_dev_desc d[16];
	int n;

	if (on >= 0)
		return on;
	on = 0;
	/* By the backend that enumerates the device: no open (a VFIO
	 * device is opened by one process, once, at a time). */
	n = sva_devices(d, 16);
	for (int i = 0; i < n && i < 16; i++)
		if (!strcmp(d[i].name, test_device()))
			on = !strcmp(d[i].backend, "vfio");
	return on;
}

bool dev_is_vfio(const struct sva_dev *dev)
{
	SVA_OPTS_INIT(sva_dev_caps, caps);

	ck_assert_int_eq(sva_dev_caps(dev, &caps), 0);
	/* Only a VFIO device names the IOMMU container it was opened in. */
	return caps.container[0] != 0;
}

bool test_skip(const char *test, const char *why)
{
	/* "# ": the VM's console filter (run-vm.sh) keeps the line. */
	printf("# %s: skipped on %s: %s\n", test, test_device(), why);
	fflush(stdout);
	return true;
}

int test_wait_ms(void)
{
	/* A bound on a hang, never a time asserted: edu's transfers are
	 * ~100 ms each of a VM's time, which a loaded host stretches. */
	return test_on_vfio() ? 60000 : 5000;
}

size_t test_len(size_t len)
{
	/* edu moves 2 KiB per ~100 ms of the VM's time: 1/1024, at least
	 * one whole transfer (2 KiB), never more than asked. */
	if (!test_on_vfio())
		return len;
	return MIN_LEN(len, MAX_LEN(len >> 10, 2048));
}

uint64_t race_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

bool race_over(uint64_t t0, unsigned int done)
{
	return done >= RACE_MIN && race_now_s() - t0 >= RACE_SECONDS;
}

void *race_writer_fn(void *arg)
{
	struct race_writer *w = arg;

	while (!atomic_load(&w->stop)) {
		unsigned int r = atomic_fetch_add(&w->rounds, 1) + 1;

		/* Before any of the pass's plain stores, on every CPU (on
		 * x86 the locked add alone is). */
		atomic_thread_fence(memory_order_seq_cst);

		for (unsigned int i = 0; i < w->pages; i++) {
			volatile uint64_t *x = &w->p[i * PAGE / 8];

			if (*x != r - 1)
				w->lost++;
			*x = r;
		}
	}
	return NULL;
}
