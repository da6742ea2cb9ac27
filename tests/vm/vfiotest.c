// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * VM tests of the VFIO backend (vfio0): QEMU's edu device bound to
 * vfio-pci by tests/vm/init, its DMA engine moving bytes through the
 * intel-iommu at IOVA == VA. Linked statically with libsva; one line per
 * case ("vfiotest: ok NAME" / "vfiotest: not ok NAME: why"), exit status 1
 * if any failed. Each edu transfer takes ~100 ms of the VM's time: the
 * sizes are small.
 *
 * SVA_VFIOTEST_CASES=a,b runs only those cases. The library's
 * SVA_VFIO_CONTAINER=type1|iommufd picks the IOMMU container (unset: its
 * default); tests/vm/init runs this once per container the kernel has,
 * and the "container" case checks that the one asked for was used.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sva/sva.h"

#define PAGE 4096ul

static int failed;
static const char *cur;
static struct sva_dev *dev;
static struct sva_bind *bind;
static uint32_t pasid;

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			printf("vfiotest: not ok %s: %s:%d: %s: ", cur,	\
			       __FILE__, __LINE__, #cond);		\
			printf(__VA_ARGS__);				\
			printf("\n");					\
			fflush(stdout);					\
			failed = 1;					\
			return -1;					\
		}							\
	} while (0)

/*
 * The process's pinned pages in kB: locked_vm (VmLck: VFIO's type1
 * accounts what it pins there) plus pinned_vm (VmPin: iommufd's).
 */
static long vm_locked_kb(void)
{
	char line[256];
	long kb = 0, v, seen = 0;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmLck: %ld kB", &v) == 1 ||
		    sscanf(line, "VmPin: %ld kB", &v) == 1) {
			kb += v;
			seen++;
		}
	}
	fclose(f);
	return seen == 2 ? kb : -1;
}

static void *map_pages(size_t n)
{
	void *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void fill_random(uint8_t *p, size_t n, unsigned int seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static int run1(const struct sva_desc *d, struct sva_completion *c)
{
	int n = sva_submit(bind, d, 1);

	if (n != 1)
		return n < 0 ? n : -EIO;
	n = sva_wait(bind, c, 1, 1, 60000);
	return n == 1 ? 0 : n < 0 ? n : -ETIMEDOUT;
}

static struct sva_desc desc(uint32_t op, void *src, void *dst, uint64_t len,
			    uint64_t pattern)
{
	return (struct sva_desc){ .opcode = op, .pasid = pasid,
				  .src = (uint64_t)(uintptr_t)src,
				  .dst = (uint64_t)(uintptr_t)dst,
				  .len = len, .pattern = pattern };
}

/* ------------------------------------------------------------- cases */

static int t_enumerate(void)
{
	struct sva_dev_desc d[16];
	int n = sva_devices(d, 16), found = 0;

	for (int i = 0; i < n && i < 16; i++)
		if (!strcmp(d[i].name, "vfio0") && !strcmp(d[i].backend, "vfio"))
			found = 1;
	CHECK(found, "vfio0 not among %d devices", n);
	return 0;
}

/* The library's last message about SVA_VFIO_CONTAINER (print_hook). */
static char last_msg[512];

/* Is container @name's interface here (its nodes, as the library's
 * default rule reads them)? */
static int container_here(const char *name)
{
	if (!strcmp(name, "type1"))
		return !access("/dev/vfio/vfio", R_OK | W_OK);
	return !access("/dev/iommu", R_OK | W_OK) &&
	       !access("/dev/vfio/devices", R_OK);
}

/* Open vfio0 with SVA_VFIO_CONTAINER=@want ("": unset); its container
 * name into @used and windows into @r (*nr of them). 0 or the open's
 * error. */
static int open_with(const char *want, char *used, size_t len,
		     struct sva_region *r, int *nr)
{
	SVA_OPTS_INIT(sva_dev_caps, caps);
	struct sva_dev *d = NULL;
	int err;

	if (*want)
		setenv("SVA_VFIO_CONTAINER", want, 1);
	else
		unsetenv("SVA_VFIO_CONTAINER");
	last_msg[0] = 0;
	err = sva_dev_open("vfio0", NULL, &d);
	if (err)
		return err;
	err = sva_dev_caps(d, &caps);
	snprintf(used, len, "%s", caps.container);
	*nr = sva_dev_reserved_regions(d, r, 32);
	sva_dev_close(d);
	return err;
}

/* SVA_VFIO_CONTAINER back to @keep ("": unset), and the global device
 * opened and bound again under it. */
static int reopen_as(const char *keep)
{
	int err;

	if (*keep)
		setenv("SVA_VFIO_CONTAINER", keep, 1);
	else
		unsetenv("SVA_VFIO_CONTAINER");
	err = sva_dev_open("vfio0", NULL, &dev);
	CHECK(!err, "reopen: %d", err);
	err = sva_bind(dev, NULL, &bind);
	CHECK(!err && !sva_bind_pasid(bind, &pasid), "rebind: %d", err);
	return 0;
}

/*
 * The container: the one this run asked for (SVA_VFIO_CONTAINER, as
 * tests/vm/init sets it per container) is the one used; the default is
 * iommufd where its nodes are, else type1; forcing one whose nodes are
 * not here, or a name that is none, fails cleanly with a message; both
 * containers, where both are here, report the same reserved windows.
 * Closes and reopens this process's device (a group is opened by one at
 * a time).
 */
static int t_container(void)
{
	const char *asked = getenv("SVA_VFIO_CONTAINER");
	char keep[32], used[32];
	static const char *const names[] = { "", "type1", "iommufd" };
	struct sva_region r[3][32];
	int nr[3] = { -1, -1, -1 }, err;
	SVA_OPTS_INIT(sva_dev_caps, caps);

	snprintf(keep, sizeof(keep), "%s", asked ? asked : "");
	CHECK(!sva_dev_caps(dev, &caps), "caps");
	printf("# vfio0: %s container (SVA_VFIO_CONTAINER=%s)\n",
	       caps.container, keep);
	CHECK(!strcmp(caps.container, *keep ? keep :
		      container_here("iommufd") ? "iommufd" : "type1"),
	      "container %s, asked for %s (iommufd %s here)",
	      caps.container, *keep ? keep : "the default",
	      container_here("iommufd") ? "is" : "isn't");
	sva_unbind(bind);
	sva_dev_close(dev);
	bind = NULL;
	dev = NULL;
	for (int i = 0; i < 3; i++) {
		const char *want = names[i];
		const char *expect = *want ? want :
				     container_here("iommufd") ? "iommufd" :
				     "type1";

		err = open_with(want, used, sizeof(used), r[i], &nr[i]);
		if (!container_here(expect)) {
			CHECK(err == -EOPNOTSUPP && strstr(last_msg, expect),
			      "SVA_VFIO_CONTAINER=%s, not here: %d, message '%s'",
			      want, err, last_msg);
			printf("# SVA_VFIO_CONTAINER=%s: not here: %s", want,
			       last_msg);
			continue;
		}
		CHECK(!err && !strcmp(used, expect),
		      "SVA_VFIO_CONTAINER=%s: %d, container %s", want, err,
		      used);
		CHECK(nr[i] > 0 && nr[i] <= 32, "%s: %d windows", used, nr[i]);
	}
	for (int i = 1; i < 3; i++) {
		if (nr[i] < 0 || nr[0] < 0)
			continue;
		CHECK(nr[i] == nr[0] && !memcmp(r[i], r[0],
						 nr[0] * sizeof(r[0][0])),
		      "%s reports %d windows, %s %d (or others)", names[i],
		      nr[i], container_here("iommufd") ? "iommufd" : "type1",
		      nr[0]);
	}
	err = open_with("bogus", used, sizeof(used), r[0], &nr[0]);
	CHECK(err == -EINVAL && strstr(last_msg, "bogus"),
	      "SVA_VFIO_CONTAINER=bogus: %d, message '%s'", err, last_msg);
	if (reopen_as(keep))
		return -1;
	return 0;
}

/* Every msi line of the group's sysfs list is a window of the device. */
static int t_reserved(void)
{
	struct sva_region r[32];
	char path[320], type[32];
	unsigned long long s, e;
	int n = sva_dev_reserved_regions(dev, r, 32), msi = 0;
	DIR *d;
	struct dirent *de;
	FILE *f = NULL;

	CHECK(n > 0, "sva_dev_reserved_regions: %d", n);
	d = opendir("/sys/kernel/iommu_groups");
	CHECK(d, "no iommu_groups");
	/* The group holding the edu device (the only vfio-pci one). */
	while (!f && (de = readdir(d))) {
		char dev_dir[300];
		DIR *g;
		struct dirent *ge;

		if (de->d_name[0] == '.')
			continue;
		snprintf(dev_dir, sizeof(dev_dir),
			 "/sys/kernel/iommu_groups/%s/devices", de->d_name);
		g = opendir(dev_dir);
		while (g && (ge = readdir(g))) {
			char drv[600], link[256] = "";
			ssize_t k;

			snprintf(drv, sizeof(drv), "%s/%s/driver", dev_dir,
				 ge->d_name);
			k = readlink(drv, link, sizeof(link) - 1);
			if (k > 0 && strstr(link, "vfio-pci")) {
				snprintf(path, sizeof(path),
					 "/sys/kernel/iommu_groups/%s/reserved_regions",
					 de->d_name);
				f = fopen(path, "re");
			}
		}
		if (g)
			closedir(g);
	}
	closedir(d);
	CHECK(f, "the vfio-pci device's group not found");
	while (fscanf(f, "%llx %llx %31s", &s, &e, type) == 3) {
		int seen = 0;

		if (strcmp(type, "msi"))
			continue;
		msi++;
		for (int i = 0; i < n; i++)
			seen |= r[i].type == SVA_REGION_MSI &&
				r[i].start <= s && e <= r[i].end;
		if (!seen)
			break;
	}
	fclose(f);
	CHECK(msi > 0, "the group lists no msi window");
	for (int i = 0; i < n; i++)
		printf("# vfio0 window %#llx-%#llx type %u\n",
		       (unsigned long long)r[i].start,
		       (unsigned long long)r[i].end, r[i].type);
	return 0;
}

/*
 * COPY @len bytes from @src + @so to @dst + @doff (@dst: 3 pages filled
 * with @bg) on the global binding: done in full, every byte right, none
 * around it touched.
 */
static int copy_exact(uint8_t *src, size_t so, uint8_t *dst,
		      size_t doff, size_t len, uint8_t bg)
{
	struct sva_completion c = { 0 };
	uint8_t *ref = malloc(3 * PAGE);
	struct sva_desc d;

	CHECK(ref, "malloc");
	memset(dst, bg, 3 * PAGE);
	memcpy(ref, dst, 3 * PAGE);
	memcpy(ref + doff, src + so, len);
	d = desc(SVA_OP_COPY, src + so, dst + doff, len, 0);
	CHECK(!run1(&d, &c), "run");
	CHECK(c.status == SVA_STATUS_SUCCESS && c.bytes_done == len,
	      "status %u done %llu", c.status,
	      (unsigned long long)c.bytes_done);
	for (size_t i = 0; i < 3 * PAGE; i++)
		CHECK(dst[i] == ref[i], "byte %zu: %#x, expected %#x%s", i,
		      dst[i], ref[i],
		      i >= doff && i < doff + len ? "" : " (outside the copy)");
	free(ref);
	return 0;
}

/* COPY across a page boundary, two chunks: every byte, nothing around. */
static int t_copy(void)
{
	uint8_t *src = map_pages(2), *dst = map_pages(3);
	const size_t len = 2048 + 777, so = 1000, doff = 3001;
	SVA_OPTS_INIT(sva_stats, st);
	long lck = vm_locked_kb();

	CHECK(src && dst, "mmap");
	fill_random(src, 2 * PAGE, 1);
	if (copy_exact(src, so, dst, doff, len, 0x5a))
		return -1;
	CHECK(vm_locked_kb() == lck, "locked_vm %ld kB, was %ld kB",
	      vm_locked_kb(), lck);
	/* Every page mapped in the IOMMU was unmapped again. */
	CHECK(!sva_bind_stats(bind, &st) && st.translations > 0 &&
	      st.translations == st.atc_invalidated,
	      "IOMMU pages mapped %llu, unmapped %llu",
	      (unsigned long long)st.translations,
	      (unsigned long long)st.atc_invalidated);
	munmap(src, 2 * PAGE);
	munmap(dst, 3 * PAGE);
	return 0;
}

/* FILL (the pattern from the library's staging page), CRC32C, COMPARE. */
static int t_fill_crc_compare(void)
{
	uint8_t *a = map_pages(2), *b = map_pages(2);
	struct sva_completion c = { 0 };
	const uint64_t pat = 0x8877665544332211ull;
	const size_t off = 123, len = 2500;
	struct sva_desc d;

	CHECK(a && b, "mmap");
	memset(a, 0xee, 2 * PAGE);
	d = desc(SVA_OP_FILL, NULL, a + off, len, pat);
	CHECK(!run1(&d, &c), "run fill");
	CHECK(c.status == SVA_STATUS_SUCCESS && c.bytes_done == len,
	      "fill: status %u done %llu", c.status,
	      (unsigned long long)c.bytes_done);
	for (size_t i = 0; i < 2 * PAGE; i++) {
		uint8_t want = i >= off && i < off + len ?
			       (uint8_t)(pat >> (8 * ((i - off) % 8))) : 0xee;

		CHECK(a[i] == want, "fill byte %zu: %#x, expected %#x", i,
		      a[i], want);
	}

	fill_random(b, 2 * PAGE, 7);
	d = desc(SVA_OP_CRC32C, b + 5, NULL, 3000, 0x1234);
	CHECK(!run1(&d, &c), "run crc");
	CHECK(c.status == SVA_STATUS_SUCCESS && c.bytes_done == 3000 &&
	      c.result == sva_crc32c(0x1234, b + 5, 3000),
	      "crc: status %u done %llu result %#llx, CPU %#x", c.status,
	      (unsigned long long)c.bytes_done,
	      (unsigned long long)c.result, sva_crc32c(0x1234, b + 5, 3000));

	memcpy(a, b, 2 * PAGE);
	a[1500] ^= 1;
	d = desc(SVA_OP_COMPARE, a, b, 2000, 0);
	CHECK(!run1(&d, &c), "run compare");
	CHECK(c.status == SVA_STATUS_SUCCESS && c.result == 1 &&
	      c.bytes_done == 1500, "compare: status %u result %llu at %llu",
	      c.status, (unsigned long long)c.result,
	      (unsigned long long)c.bytes_done);
	munmap(a, 2 * PAGE);
	munmap(b, 2 * PAGE);
	return 0;
}

/* A destination running into an unmapped page: the bytes before it are
 * copied, the descriptor completes FAULT_INVALID at the hole. */
static int t_fault_unmapped(void)
{
	uint8_t *src = map_pages(1), *dst = map_pages(3);
	struct sva_completion c = { 0 };
	struct sva_desc d;
	long lck = vm_locked_kb();

	CHECK(src && dst, "mmap");
	fill_random(src, PAGE, 3);
	memset(dst, 0, PAGE);
	CHECK(!munmap(dst + PAGE, PAGE), "munmap");
	d = desc(SVA_OP_COPY, src, dst + PAGE - 512, 1024, 0);
	CHECK(!run1(&d, &c), "run");
	CHECK(c.status == SVA_STATUS_FAULT_INVALID &&
	      c.fault_addr == (uint64_t)(uintptr_t)(dst + PAGE) &&
	      c.fault_access == SVA_ACCESS_WRITE && c.bytes_done == 512,
	      "status %u fault %#llx (hole %p) access %u done %llu",
	      c.status, (unsigned long long)c.fault_addr, dst + PAGE,
	      c.fault_access, (unsigned long long)c.bytes_done);
	CHECK(!memcmp(dst + PAGE - 512, src, 512), "the bytes before the hole");
	for (size_t i = 0; i < PAGE - 512; i++)
		CHECK(!dst[i], "byte %zu before the copy written", i);
	CHECK(vm_locked_kb() == lck, "locked_vm %ld kB, was %ld kB",
	      vm_locked_kb(), lck);
	munmap(src, PAGE);
	munmap(dst, 3 * PAGE);
	return 0;
}

/* A FILL running into the MSI window: INVALID at its first byte, the
 * bytes before it filled, nothing mapped there. */
static int t_msi_window(void)
{
	const uint64_t msi = 0xfee00000ull;
	uint8_t *p = mmap((void *)(uintptr_t)(msi - PAGE), 2 * PAGE,
			  PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			  -1, 0);
	struct sva_completion c = { 0 };
	struct sva_desc d;

	CHECK(p == (void *)(uintptr_t)(msi - PAGE), "mmap at %#llx: %s",
	      (unsigned long long)(msi - PAGE), strerror(errno));
	memset(p, 0, 2 * PAGE);
	d = desc(SVA_OP_FILL, NULL, p + PAGE - 100, 200, 0xabababababababab);
	CHECK(!run1(&d, &c), "run");
	CHECK(c.status == SVA_STATUS_FAULT_INVALID && c.fault_addr == msi &&
	      c.bytes_done == 100, "status %u fault %#llx done %llu",
	      c.status, (unsigned long long)c.fault_addr,
	      (unsigned long long)c.bytes_done);
	for (size_t i = 0; i < 2 * PAGE; i++)
		CHECK(p[i] == (i >= PAGE - 100 && i < PAGE ? 0xab : 0),
		      "byte %zu: %#x", i, p[i]);
	munmap(p, 2 * PAGE);
	return 0;
}

struct bg {
	struct sva_desc d;
	struct sva_completion c;
	int err;
	atomic_int done;		/* c and err are set */
};

static void *bg_run(void *arg)
{
	struct bg *b = arg;

	b->err = run1(&b->d, &b->c);
	atomic_store(&b->done, 1);
	return NULL;
}

/*
 * munmap() of a buffer while the engine fills it: once munmap() returns,
 * nothing of it is pinned (locked_vm back where it was: VFIO's type1
 * accounts every pinned page there), and the rest of the descriptor
 * completes FAULT_INVALID at the first chunk not done.
 */
static int t_munmap_during_dma(void)
{
	uint8_t *p = map_pages(2);
	struct timespec ts = { 0, 50 * 1000000 };
	long lck = vm_locked_kb(), after;
	struct bg b = { 0 };
	pthread_t th;

	CHECK(p, "mmap");
	memset(p, 1, 2 * PAGE);
	b.d = desc(SVA_OP_FILL, NULL, p, 2 * PAGE, 0x0101010101010101);
	CHECK(!pthread_create(&th, NULL, bg_run, &b), "thread");
	nanosleep(&ts, NULL);	/* into the first chunk, likely */
	CHECK(!munmap(p, 2 * PAGE), "munmap");
	after = vm_locked_kb();
	pthread_join(th, NULL);
	CHECK(after == lck, "locked_vm %ld kB right after munmap, %ld kB before: a mapping outlived it",
	      after, lck);
	CHECK(!b.err, "run: %d", b.err);
	CHECK(b.c.status == SVA_STATUS_FAULT_INVALID &&
	      b.c.bytes_done % 2048 == 0 && b.c.bytes_done < 2 * PAGE &&
	      b.c.fault_addr == (uint64_t)(uintptr_t)p + b.c.bytes_done,
	      "status %u fault %#llx (buffer %p) done %llu", b.c.status,
	      (unsigned long long)b.c.fault_addr, p,
	      (unsigned long long)b.c.bytes_done);
	printf("# munmap during DMA: %llu bytes done before it\n",
	       (unsigned long long)b.c.bytes_done);
	CHECK(vm_locked_kb() == lck, "locked_vm %ld kB at the end, was %ld kB",
	      vm_locked_kb(), lck);
	return 0;
}

struct inval_seen {
	pthread_mutex_t lock;
	uint64_t start, end;
	int event;
};

static void on_inval(struct sva_mirror *m, uint64_t start, uint64_t end,
		     enum sva_inval_event ev, uint64_t seq, void *ctx)
{
	struct inval_seen *s = ctx;

	(void)m;
	(void)seq;
	pthread_mutex_lock(&s->lock);
	if (ev != SVA_INVAL_RELEASE) {
		s->start = start;
		s->end = end;
		s->event = ev;
	}
	pthread_mutex_unlock(&s->lock);
}

/* A mirror on vfio0 hears of munmap through sim's event thread: its
 * sequence has moved when munmap() returns, the callback follows. */
static int t_mirror_munmap(void)
{
	struct inval_seen s = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0 };
	SVA_OPTS_INIT(sva_mirror_opts, o, .invalidate = on_inval, .ctx = &s);
	uint8_t *p = map_pages(4);
	struct sva_mirror *m;
	uint64_t seq;
	int got = 0;

	CHECK(p, "mmap");
	memset(p, 1, 4 * PAGE);
	CHECK(!sva_mirror_register(bind, (uint64_t)(uintptr_t)p, 4 * PAGE,
				   &o, &m), "register");
	seq = sva_mirror_read_begin(m);
	CHECK(!munmap(p + PAGE, PAGE), "munmap");
	CHECK(sva_mirror_read_retry(m, seq), "sequence unchanged by munmap");
	for (int i = 0; i < 2000 && !got; i++) {
		struct timespec ts = { 0, 1000000 };

		pthread_mutex_lock(&s.lock);
		got = s.event == SVA_INVAL_UNMAP &&
		      s.start <= (uint64_t)(uintptr_t)(p + PAGE) &&
		      s.end >= (uint64_t)(uintptr_t)(p + 2 * PAGE);
		pthread_mutex_unlock(&s.lock);
		nanosleep(&ts, NULL);
	}
	CHECK(got, "no UNMAP callback over the page (last: event %d %#llx-%#llx)",
	      s.event, (unsigned long long)s.start,
	      (unsigned long long)s.end);
	CHECK(!sva_mirror_unregister(m), "unregister");
	munmap(p, 4 * PAGE);
	return 0;
}

/* Many mirrors: one a page, and one over them all. */
#define MANY_PAGES 64

struct many_seen {
	atomic_int calls[MANY_PAGES + 1];	/* [MANY_PAGES]: the big one */
	atomic_int events[MANY_PAGES + 1];	/* the last event, not RELEASE */
};

static struct many_seen many;

static void on_many(struct sva_mirror *m, uint64_t start, uint64_t end,
		    enum sva_inval_event ev, uint64_t seq, void *ctx)
{
	int i = (int)(uintptr_t)ctx;

	(void)m, (void)start, (void)end, (void)seq;
	if (ev == SVA_INVAL_RELEASE)
		return;
	atomic_store(&many.events[i], ev);
	atomic_fetch_add(&many.calls[i], 1);
}

/* Wait up to 2 s for mirror @i's callback to have run @n times. */
static int many_calls(int i, int n)
{
	for (int t = 0; t < 2000 && atomic_load(&many.calls[i]) < n; t++) {
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);
	}
	return atomic_load(&many.calls[i]);
}

/*
 * 65 mirrors on vfio0 (64 of a page each, one over all of them) while the
 * device writes some of their pages: a DONTNEED of 4 pages and a munmap of
 * one reach exactly the mirrors over them (sequence moved, the callback
 * with the event), none of the others; the device's writes after the
 * discard land byte exact; unregistering all leaves nothing pinned.
 */
static int t_many_mirrors(void)
{
	uint8_t *p = map_pages(MANY_PAGES), *src = map_pages(1);
	struct sva_mirror *m[MANY_PAGES + 1];
	uint64_t seq[MANY_PAGES + 1];
	static const int written[] = { 3, 10, 12, 40 };
	long lck = vm_locked_kb();
	struct sva_completion c;
	struct sva_desc d;

	CHECK(p && src, "mmap");
	memset(&many, 0, sizeof(many));
	memset(p, 0x11, MANY_PAGES * PAGE);
	fill_random(src, PAGE, 77);
	for (int i = 0; i <= MANY_PAGES; i++) {
		SVA_OPTS_INIT(sva_mirror_opts, o, .invalidate = on_many,
			      .ctx = (void *)(uintptr_t)i);
		uint64_t a = (uint64_t)(uintptr_t)p +
			     (i < MANY_PAGES ? (uint64_t)i * PAGE : 0);

		CHECK(!sva_mirror_register(bind, a, i < MANY_PAGES ? PAGE :
					   MANY_PAGES * PAGE, &o, &m[i]),
		      "register mirror %d", i);
	}
	/* The device writes 256 bytes into a few pages. */
	for (size_t k = 0; k < ARRAY_SIZE(written); k++) {
		uint8_t *dst = p + written[k] * PAGE + 1000;

		d = desc(SVA_OP_COPY, src, dst, 256, 0);
		CHECK(!run1(&d, &c) && c.status == SVA_STATUS_SUCCESS,
		      "copy into page %d: status %u", written[k], c.status);
		CHECK(!memcmp(dst, src, 256) && dst[-1] == 0x11 &&
		      dst[256] == 0x11, "page %d: not exactly the bytes told",
		      written[k]);
	}
	for (int i = 0; i <= MANY_PAGES; i++)
		seq[i] = sva_mirror_read_begin(m[i]);

	/* Discard pages 10-13, unmap page 40. */
	CHECK(!madvise(p + 10 * PAGE, 4 * PAGE, MADV_DONTNEED), "madvise");
	CHECK(!munmap(p + 40 * PAGE, PAGE), "munmap");
	for (int i = 0; i < MANY_PAGES; i++) {
		bool hit = (i >= 10 && i < 14) || i == 40;

		CHECK(sva_mirror_read_retry(m[i], seq[i]) == hit,
		      "mirror %d: sequence %s", i, hit ? "unchanged by its invalidation" :
		      "moved by another page's");
		if (hit) {
			CHECK(many_calls(i, 1) >= 1, "mirror %d: no callback", i);
			CHECK(atomic_load(&many.events[i]) ==
			      (i == 40 ? SVA_INVAL_UNMAP : SVA_INVAL_DISCARD),
			      "mirror %d: event %d", i,
			      atomic_load(&many.events[i]));
		}
	}
	CHECK(sva_mirror_read_retry(m[MANY_PAGES], seq[MANY_PAGES]),
	      "the big mirror's sequence unchanged");
	CHECK(many_calls(MANY_PAGES, 2) >= 2, "the big mirror: %d callbacks",
	      atomic_load(&many.calls[MANY_PAGES]));
	for (int i = 0; i < MANY_PAGES; i++)
		if (!((i >= 10 && i < 14) || i == 40))
			CHECK(!atomic_load(&many.calls[i]),
			      "mirror %d: a callback for another page's invalidation",
			      i);

	/* The discarded page reads zeros; the device writes it again. */
	CHECK(p[12 * PAGE + 1000] == 0, "page 12 not discarded");
	d = desc(SVA_OP_COPY, src, p + 12 * PAGE + 1000, 256, 0);
	CHECK(!run1(&d, &c) && c.status == SVA_STATUS_SUCCESS,
	      "copy after discard: status %u", c.status);
	CHECK(!memcmp(p + 12 * PAGE + 1000, src, 256) &&
	      p[12 * PAGE + 999] == 0 && p[12 * PAGE + 1256] == 0,
	      "copy after discard: not exactly the bytes told");
	for (int i = 0; i <= MANY_PAGES; i++)
		CHECK(!sva_mirror_unregister(m[i]), "unregister %d", i);
	CHECK(vm_locked_kb() == lck, "locked_vm %ld kB, was %ld kB",
	      vm_locked_kb(), lck);
	munmap(p, MANY_PAGES * PAGE);
	munmap(src, PAGE);
	return 0;
}

/* fork(): the child's calls are -EPERM and it holds no VFIO fd; the
 * parent's device still moves bytes. */
static int t_fork(void)
{
	uint8_t *src = map_pages(1), *dst = map_pages(1);
	struct sva_completion c = { 0 };
	struct sva_desc d;
	int status;
	pid_t pid;

	CHECK(src && dst, "mmap");
	fill_random(src, PAGE, 9);
	memset(dst, 0, PAGE);
	d = desc(SVA_OP_COPY, src, dst, 256, 0);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (!pid) {
		int bad = 0;
		DIR *fds = opendir("/proc/self/fd");
		struct dirent *e;

		if (sva_submit(bind, &d, 1) != -EPERM)
			bad |= 1;
		if (sva_dev_fd(dev) != -EPERM)
			bad |= 2;
		while (fds && (e = readdir(fds))) {
			char l[300], t[256] = "";

			snprintf(l, sizeof(l), "/proc/self/fd/%s", e->d_name);
			if (readlink(l, t, sizeof(t) - 1) > 0 &&
			    !strncmp(t, "/dev/vfio", 9))
				bad |= 4;
			if (readlink(l, t, sizeof(t) - 1) > 0 &&
			    strstr(t, "vfio-device"))
				bad |= 4;
			if (readlink(l, t, sizeof(t) - 1) > 0 &&
			    !strncmp(t, "/dev/iommu", 10))
				bad |= 4;
		}
		_exit(bad);
	}
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && !WEXITSTATUS(status),
	      "child: status %#x (1: submit not -EPERM, 2: dev_fd not -EPERM, 4: a VFIO or iommufd fd inherited)",
	      status);
	CHECK(!run1(&d, &c), "parent run");
	CHECK(c.status == SVA_STATUS_SUCCESS && !memcmp(dst, src, 256),
	      "parent copy after fork: status %u", c.status);
	munmap(src, PAGE);
	munmap(dst, PAGE);
	return 0;
}

/* ------------------------------------------------ the hostile user */

/* What an invalidation callback got from the calls it made into libsva
 * while a vfio descriptor ran. */
struct reenter {
	struct sva_mirror *m;
	uint64_t page;			/* a page of the mirror to snapshot */
	int armed, calls;
	int inflight;			/* sva_inflight() in the callback */
	int seq_ok, snap, stats, dstats, submitted, reaped;
	uint32_t nop_status;
	uint64_t nop_data;
};

static void reenter_cb(struct sva_mirror *m, uint64_t start, uint64_t end,
		       enum sva_inval_event ev, uint64_t seq, void *ctx)
{
	struct reenter *r = ctx;
	SVA_OPTS_INIT(sva_stats, st);
	struct sva_desc nop = { .opcode = SVA_OP_NOP, .pasid = pasid,
				.user_data = 0xca11 };
	struct sva_completion c = { 0 };
	uint8_t state = 0;
	uint64_t s;

	(void)start, (void)end, (void)seq;
	if (ev != SVA_INVAL_DISCARD ||
	    !__atomic_exchange_n(&r->armed, 0, __ATOMIC_ACQ_REL))
		return;
	r->inflight = sva_inflight(bind);
	s = sva_mirror_read_begin(m);
	/* Nothing else moved the mirror meanwhile: not a retry. */
	r->seq_ok = !sva_mirror_read_retry(m, s);
	r->snap = sva_mirror_snapshot(m, r->page, PAGE, &state, 0);
	r->stats = sva_bind_stats(bind, &st);
	r->dstats = sva_dev_stats(dev, &st);
	/* A NOP behind the running COPY: reaped here (the engine must
	 * not need this thread, nor a lock it holds, to finish the COPY).
	 * The COPY's completion may come first: both are kept. */
	r->submitted = sva_submit(bind, &nop, 1);
	while (r->submitted == 1 && r->reaped >= 0 && c.user_data != 0xca11) {
		int n = sva_wait(bind, &c, 1, 1, 20000);

		r->reaped = n == 1 ? r->reaped + 1 : n ? n : -ETIMEDOUT;
		if (n == 1 && c.user_data != 0xca11)
			r->nop_data = c.user_data;	/* the COPY's */
	}
	r->nop_status = c.status;
	__atomic_add_fetch(&r->calls, 1, __ATOMIC_RELEASE);
}

/*
 * A mirror's invalidation callback calls back into libsva (read_begin/
 * read_retry, snapshot, bind and device stats, submit of a NOP and a wait
 * for it) while a vfio COPY runs on the engine: every call works, none
 * hangs, the COPY is byte exact, nothing stays pinned.
 */
static int t_callback_reenters(void)
{
	struct reenter r = { 0 };
	SVA_OPTS_INIT(sva_mirror_opts, o, .invalidate = reenter_cb, .ctx = &r);
	uint8_t *mp = map_pages(2), *src = map_pages(2), *dst = map_pages(2);
	struct timespec ts = { 0, 50 * 1000000 };
	long lck = vm_locked_kb();
	struct sva_completion c = { 0 };
	struct sva_desc d;
	int n, copy_seen;

	CHECK(mp && src && dst, "mmap");
	memset(mp, 3, 2 * PAGE);
	fill_random(src, 2 * PAGE, 21);
	memset(dst, 0, 2 * PAGE);
	CHECK(!sva_mirror_register(bind, (uint64_t)(uintptr_t)mp, 2 * PAGE,
				   &o, &r.m), "register");
	r.page = (uint64_t)(uintptr_t)mp + PAGE;
	/* The device touched the mirror's pages: their discard reaches it. */
	d = desc(SVA_OP_COPY, mp, mp + PAGE, 64, 0);
	CHECK(!run1(&d, &c) && c.status == SVA_STATUS_SUCCESS, "warm copy");
	/* Four transfers of 2 KiB: ~0.8 s of the engine. */
	d = desc(SVA_OP_COPY, src, dst, 2 * PAGE, 0);
	d.user_data = 0xc0b7;
	CHECK(sva_submit(bind, &d, 1) == 1, "submit");
	nanosleep(&ts, NULL);
	__atomic_store_n(&r.armed, 1, __ATOMIC_RELEASE);
	CHECK(!madvise(mp, PAGE, MADV_DONTNEED), "madvise");
	for (int i = 0; i < 30000 && !__atomic_load_n(&r.calls,
						     __ATOMIC_ACQUIRE); i++) {
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);
	}
	CHECK(__atomic_load_n(&r.calls, __ATOMIC_ACQUIRE) == 1,
	      "the callback didn't finish (30 s)");
	CHECK(r.inflight >= 1, "the COPY wasn't in flight in the callback (%d)",
	      r.inflight);
	CHECK(r.seq_ok && !r.snap && !r.stats && !r.dstats,
	      "in the callback: read_retry %d, snapshot %d, bind stats %d, dev stats %d",
	      r.seq_ok, r.snap, r.stats, r.dstats);
	CHECK(r.submitted == 1 && r.reaped > 0 &&
	      r.nop_status == SVA_STATUS_SUCCESS,
	      "NOP from the callback: submit %d, reaped %d, status %u",
	      r.submitted, r.reaped, r.nop_status);
	/* The COPY's completion: reaped by the callback or here, once. */
	copy_seen = r.nop_data == 0xc0b7;
	if (!copy_seen) {
		n = sva_wait(bind, &c, 1, 1, 60000);
		CHECK(n == 1 && c.user_data == 0xc0b7, "COPY: %d, %#llx", n,
		      (unsigned long long)c.user_data);
		CHECK(c.status == SVA_STATUS_SUCCESS, "COPY: status %u",
		      c.status);
	}
	CHECK(sva_inflight(bind) == 0, "%d still in flight",
	      sva_inflight(bind));
	CHECK(!memcmp(src, dst, 2 * PAGE), "COPY not byte exact");
	CHECK(!sva_mirror_unregister(r.m), "unregister");
	CHECK(vm_locked_kb() == lck, "locked_vm %ld kB, was %ld kB",
	      vm_locked_kb(), lck);
	munmap(mp, 2 * PAGE);
	munmap(src, 2 * PAGE);
	munmap(dst, 2 * PAGE);
	return 0;
}

#define SQ_THREADS 4
#define SQ_EACH 3
#define SQ_LEN 512

struct sq {
	struct sva_bind *b;
	uint32_t pasid;
	uint8_t *src, *dst;
	int eagain;
	int err;
};

struct sq_thread {
	struct sq *q;
	int id;
};

static void *sq_submit(void *arg)
{
	struct sq_thread *t = arg;
	struct sq *q = t->q;

	for (int i = 0; i < SQ_EACH; i++) {
		int k = t->id * SQ_EACH + i;
		struct sva_desc d = {
			.opcode = SVA_OP_COPY, .pasid = q->pasid,
			.src = (uint64_t)(uintptr_t)(q->src + k * SQ_LEN),
			.dst = (uint64_t)(uintptr_t)(q->dst + k * SQ_LEN),
			.len = SQ_LEN, .user_data = (uint64_t)k,
		};
		int n;

		while ((n = sva_submit(q->b, &d, 1)) == -EAGAIN) {
			struct timespec ms = { 0, 2000000 };

			__atomic_add_fetch(&q->eagain, 1, __ATOMIC_RELAXED);
			nanosleep(&ms, NULL);
		}
		if (n != 1)
			q->err = n;
	}
	return NULL;
}

/*
 * Several threads submit to one binding whose queue holds 2: they get
 * -EAGAIN and retry while the main thread reaps; every completion comes
 * once, each COPY is byte exact, nothing stays pinned.
 */
static int t_threads_small_queue(void)
{
	SVA_OPTS_INIT(sva_bind_opts, bo, .queue_depth = 2);
	enum { N = SQ_THREADS * SQ_EACH };
	struct sq q = { 0 };
	struct sq_thread th[SQ_THREADS];
	pthread_t tid[SQ_THREADS];
	int seen[N] = { 0 }, got = 0;
	long lck = vm_locked_kb();

	q.src = map_pages(2);
	q.dst = map_pages(2);
	CHECK(q.src && q.dst, "mmap");
	fill_random(q.src, 2 * PAGE, 31);
	memset(q.dst, 0, 2 * PAGE);
	CHECK(!sva_bind(dev, &bo, &q.b) && !sva_bind_pasid(q.b, &q.pasid),
	      "bind with a queue of 2");
	for (int i = 0; i < SQ_THREADS; i++) {
		th[i] = (struct sq_thread){ &q, i };
		CHECK(!pthread_create(&tid[i], NULL, sq_submit, &th[i]),
		      "thread");
	}
	while (got < N) {
		struct sva_completion c[4];
		int n = sva_wait(q.b, c, 4, 1, 30000);

		CHECK(n > 0, "wait: %d after %d of %d", n, got, N);
		for (int i = 0; i < n; i++) {
			CHECK(c[i].user_data < N, "user_data %#llx",
			      (unsigned long long)c[i].user_data);
			CHECK(c[i].status == SVA_STATUS_SUCCESS &&
			      c[i].bytes_done == SQ_LEN,
			      "desc %llu: status %u done %llu",
			      (unsigned long long)c[i].user_data, c[i].status,
			      (unsigned long long)c[i].bytes_done);
			seen[c[i].user_data]++;
		}
		got += n;
	}
	for (int i = 0; i < SQ_THREADS; i++)
		pthread_join(tid[i], NULL);
	CHECK(!q.err, "submit: %d", q.err);
	for (int i = 0; i < N; i++)
		CHECK(seen[i] == 1, "desc %d completed %d times", i, seen[i]);
	CHECK(sva_inflight(q.b) == 0, "%d in flight", sva_inflight(q.b));
	CHECK(!memcmp(q.src, q.dst, N * SQ_LEN), "not byte exact");
	for (size_t i = N * SQ_LEN; i < 2 * PAGE; i++)
		CHECK(!q.dst[i], "byte %zu past the copies written", i);
	CHECK(q.eagain > 0, "a queue of 2 never refused %d submitters", SQ_THREADS);
	printf("# %d submitters, queue of 2: %d -EAGAIN\n", SQ_THREADS, q.eagain);
	CHECK(!sva_unbind(q.b), "unbind");
	CHECK(vm_locked_kb() == lck, "locked_vm %ld kB, was %ld kB",
	      vm_locked_kb(), lck);
	munmap(q.src, 2 * PAGE);
	munmap(q.dst, 2 * PAGE);
	return 0;
}

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

/* Reclaim @p (MADV_PAGEOUT; MADV_COLD where the kernel lacks it). */
static void page_out(void *p, size_t len)
{
	if (madvise(p, len, MADV_PAGEOUT))
		madvise(p, len, MADV_COLD);
}

/*
 * Queued work (the queue stopped) whose source is paged out and whose
 * destination mremap()s away before it runs: the paged-out source is read
 * back exactly; a COPY to the old destination address ends FAULT_INVALID
 * there (nothing mapped at it any more) and the moved pages keep what
 * they had (no write through a stale mapping); a COPY from an old source
 * address faults too and writes nothing. Then the same with the
 * destination moved while its COPY runs: the moved pages hold the bytes
 * done before the fault and nothing else. Nothing stays pinned.
 */
static int t_pageout_mremap_queued(void)
{
	uint8_t *src = map_pages(2), *dst = map_pages(2), *src2 = map_pages(1);
	uint8_t *dst2 = map_pages(1), *to = map_pages(2), *moved, *w;
	uint8_t ref[2 * PAGE];
	struct timespec ts = { 0, 150 * 1000000 };
	struct sva_completion c[3];
	struct sva_desc d[3];
	long lck = vm_locked_kb();
	struct bg b = { 0 };
	pthread_t th;
	int n = 0;

	CHECK(src && dst && src2 && dst2 && to, "mmap");
	fill_random(src, 2 * PAGE, 41);
	fill_random(src2, PAGE, 43);
	memset(dst, 0x11, 2 * PAGE);
	memset(dst2, 0x22, PAGE);
	CHECK(!sva_queue_stop(bind), "stop");
	d[0] = desc(SVA_OP_COPY, src, dst, 1500, 0);		/* dst moves */
	d[1] = desc(SVA_OP_COPY, src2, dst2, 1000, 0);		/* src2 moves */
	d[2] = desc(SVA_OP_COPY, src + PAGE, dst + PAGE, 1000, 0); /* paged out */
	for (int i = 0; i < 3; i++)
		d[i].user_data = (uint64_t)i;
	CHECK(sva_submit(bind, d, 3) == 3, "submit");
	page_out(src, 2 * PAGE);
	{
		unsigned char vec[2] = { 1, 1 };

		/* Without swap (the VM has none here) anonymous pages stay:
		 * said, not asserted (the result must be exact either way). */
		if (!mincore(src, 2 * PAGE, vec))
			printf("# MADV_PAGEOUT: %d of 2 source pages left memory\n",
			       !(vec[0] & 1) + !(vec[1] & 1));
	}
	/* dst's first page and src2 move (to's first page, then dst2's old
	 * place: MREMAP_FIXED onto mappings of ours replaces them). */
	moved = mremap(dst, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	CHECK(moved == to, "mremap dst: %s", strerror(errno));
	CHECK(mremap(src2, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
		     to + PAGE) == to + PAGE, "mremap src2: %s",
	      strerror(errno));
	CHECK(!sva_queue_start(bind), "start");
	while (n < 3) {
		int k = sva_wait(bind, c + n, 3 - n, 1, 60000);

		CHECK(k > 0, "wait: %d", k);
		n += k;
	}
	for (int i = 0; i < 3; i++) {
		const struct sva_completion *x = &c[i];

		switch (x->user_data) {
		case 0:
			CHECK(x->status == SVA_STATUS_FAULT_INVALID &&
			      x->fault_addr == (uint64_t)(uintptr_t)dst &&
			      x->fault_access == SVA_ACCESS_WRITE &&
			      !x->bytes_done,
			      "COPY to a moved dst: status %u at %#llx (dst %p) done %llu",
			      x->status, (unsigned long long)x->fault_addr,
			      dst, (unsigned long long)x->bytes_done);
			break;
		case 1:
			CHECK(x->status == SVA_STATUS_FAULT_INVALID &&
			      x->fault_addr == (uint64_t)(uintptr_t)src2 &&
			      x->fault_access == SVA_ACCESS_READ &&
			      !x->bytes_done,
			      "COPY from a moved src: status %u at %#llx (src %p) done %llu",
			      x->status, (unsigned long long)x->fault_addr,
			      src2, (unsigned long long)x->bytes_done);
			break;
		case 2:
			CHECK(x->status == SVA_STATUS_SUCCESS &&
			      x->bytes_done == 1000,
			      "COPY from a paged-out src: status %u done %llu",
			      x->status, (unsigned long long)x->bytes_done);
			break;
		default:
			CHECK(0, "user_data %llu", (unsigned long long)x->user_data);
		}
	}
	for (size_t i = 0; i < PAGE; i++)
		CHECK(to[i] == 0x11, "moved dst byte %zu: %#x (written through its old address?)",
		      i, to[i]);
	CHECK(!memcmp(dst + PAGE, src + PAGE, 1000), "paged-out source not copied exactly");
	for (size_t i = PAGE + 1000; i < 2 * PAGE; i++)
		CHECK(dst[i] == 0x11, "byte %zu past the copy: %#x", i, dst[i]);
	for (size_t i = 0; i < PAGE; i++)
		CHECK(dst2[i] == 0x22, "dst2 byte %zu written from a moved source", i);
	CHECK(vm_locked_kb() == lck, "locked_vm %ld kB after the queued work, was %ld kB",
	      vm_locked_kb(), lck);

	/* The destination moves while its COPY runs (4 transfers). */
	w = map_pages(2);
	CHECK(w, "mmap");
	fill_random(src, 2 * PAGE, 47);
	memset(w, 0x33, 2 * PAGE);
	b.d = desc(SVA_OP_COPY, src, w, 2 * PAGE, 0);
	CHECK(!pthread_create(&th, NULL, bg_run, &b), "thread");
	nanosleep(&ts, NULL);	/* into its first or second chunk */
	moved = mremap(w, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
		       to);
	CHECK(moved == to, "mremap during DMA: %s", strerror(errno));
	CHECK(vm_locked_kb() == lck, "locked_vm %ld kB right after mremap, was %ld kB",
	      vm_locked_kb(), lck);
	pthread_join(th, NULL);
	CHECK(!b.err, "run: %d", b.err);
	CHECK((b.c.status == SVA_STATUS_SUCCESS && b.c.bytes_done == 2 * PAGE) ||
	      (b.c.status == SVA_STATUS_FAULT_INVALID &&
	       b.c.bytes_done % 2048 == 0 &&
	       b.c.fault_addr == (uint64_t)(uintptr_t)w + b.c.bytes_done),
	      "COPY under mremap: status %u fault %#llx (old dst %p) done %llu",
	      b.c.status, (unsigned long long)b.c.fault_addr, w,
	      (unsigned long long)b.c.bytes_done);
	memcpy(ref, src, b.c.bytes_done);
	memset(ref + b.c.bytes_done, 0x33, 2 * PAGE - b.c.bytes_done);
	for (size_t i = 0; i < 2 * PAGE; i++)
		CHECK(to[i] == ref[i], "moved byte %zu: %#x, expected %#x (%llu done)",
		      i, to[i], ref[i], (unsigned long long)b.c.bytes_done);
	printf("# mremap during DMA: %llu bytes done before it\n",
	       (unsigned long long)b.c.bytes_done);
	CHECK(vm_locked_kb() == lck, "locked_vm %ld kB at the end, was %ld kB",
	      vm_locked_kb(), lck);
	munmap(src, 2 * PAGE);
	munmap(dst, 2 * PAGE);
	munmap(to, 2 * PAGE);
	munmap(dst2, PAGE);
	return 0;
}

/* print_hook: a warning naming @watch seen, and the message. */
static const char *watch;
static char watch_msg[512];

static const char *const viable_drivers[] = { "vfio-pci", "pci-stub",
					      "pcieport" };

/* The driver of PCI device @bdf, "" if none. */
static void pci_driver(const char *bdf, char *out, size_t len)
{
	char path[300], t[256];
	ssize_t k;
	const char *b;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
	k = readlink(path, t, sizeof(t) - 1);
	out[0] = 0;
	if (k <= 0)
		return;
	t[k] = 0;
	b = strrchr(t, '/');
	snprintf(out, len, "%.63s", b ? b + 1 : t);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/*
 * An edu device in a group with a member on a host driver (the VM's second
 * edu, beside a serial card behind one PCI bridge): opening it fails with
 * -EBUSY and a message naming that member, as VFIO requires.
 */
static int t_group_not_viable(void)
{
	char edus[8][64], drv[64], name[16], member[64] = "";
	int nedu = 0, idx = -1, err;
	struct sva_dev *d2 = NULL;
	struct dirent *e;
	DIR *dir = opendir("/sys/bus/pci/devices");

	CHECK(dir, "no PCI devices");
	while ((e = readdir(dir)) && nedu < 8) {
		char p[300], v[16] = "", dv[16] = "";
		FILE *f;

		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/vendor",
			 e->d_name);
		if ((f = fopen(p, "re"))) {
			if (!fgets(v, sizeof(v), f))
				v[0] = 0;
			fclose(f);
		}
		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/device",
			 e->d_name);
		if ((f = fopen(p, "re"))) {
			if (!fgets(dv, sizeof(dv), f))
				dv[0] = 0;
			fclose(f);
		}
		pci_driver(e->d_name, drv, sizeof(drv));
		if (!strncmp(v, "0x1234", 6) && !strncmp(dv, "0x11e8", 6) &&
		    !strcmp(drv, "vfio-pci"))
			snprintf(edus[nedu++], 64, "%.63s", e->d_name);
	}
	closedir(dir);
	qsort(edus, nedu, sizeof(edus[0]), str_cmp);
	/* The first whose group has a member on another driver. */
	for (int i = 0; i < nedu && idx < 0; i++) {
		char gd[300];
		DIR *g;

		snprintf(gd, sizeof(gd),
			 "/sys/bus/pci/devices/%s/iommu_group/devices", edus[i]);
		g = opendir(gd);
		while (g && (e = readdir(g)) && idx < 0) {
			int ok = 0;

			if (e->d_name[0] == '.')
				continue;
			pci_driver(e->d_name, drv, sizeof(drv));
			ok = !drv[0];	/* no driver: viable */
			for (size_t k = 0; k < 3; k++)
				ok |= !strcmp(drv, viable_drivers[k]);
			if (!ok) {
				idx = i;
				snprintf(member, sizeof(member), "%.63s",
					 e->d_name);
			}
		}
		if (g)
			closedir(g);
	}
	CHECK(idx >= 0, "no edu device in a non-viable group among %d (run-vm.sh puts one beside a pci-serial)",
	      nedu);
	snprintf(name, sizeof(name), "vfio%d", idx);
	watch_msg[0] = 0;
	watch = member;
	err = sva_dev_open(name, NULL, &d2);
	watch = NULL;
	CHECK(err == -EBUSY && !d2, "%s (%s, beside %s): %d", name,
	      edus[idx], member, err);
	CHECK(watch_msg[0], "no message named %s", member);
	printf("# %s", watch_msg);
	return 0;
}

/*
 * A process killed in the middle of a DMA: its VFIO objects go with it
 * (the group opens again here), and the engine it left running is waited
 * for, not reprogrammed under it (a copy after it is exact). Runs with
 * this process's own device closed: a group is opened by one at a time.
 */
static int t_killed_mid_dma(void)
{
	uint8_t *src = map_pages(1), *dst = map_pages(1);
	struct sva_completion c = { 0 };
	struct timespec ts = { 0, 150 * 1000000 };
	int pipefd[2], status, err;
	struct sva_desc d;
	char ready;
	pid_t pid;

	CHECK(src && dst && !pipe(pipefd), "mmap, pipe");
	sva_unbind(bind);
	sva_dev_close(dev);
	bind = NULL;
	dev = NULL;
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (!pid) {
		struct sva_dev *cd;
		struct sva_bind *cb;
		uint8_t *p = map_pages(2);
		uint32_t cpasid = 0;
		struct sva_desc f;

		if (!p || sva_dev_open("vfio0", NULL, &cd) ||
		    sva_bind(cd, NULL, &cb) || sva_bind_pasid(cb, &cpasid))
			_exit(2);
		f = (struct sva_desc){ .opcode = SVA_OP_FILL, .pasid = cpasid,
				       .dst = (uint64_t)(uintptr_t)p,
				       .len = 2 * PAGE, .pattern = 7 };
		if (sva_submit(cb, &f, 1) != 1)
			_exit(3);
		if (write(pipefd[1], "r", 1) != 1)
			_exit(4);
		pause();	/* killed while the engine runs */
		_exit(5);
	}
	close(pipefd[1]);
	CHECK(read(pipefd[0], &ready, 1) == 1, "child didn't start its DMA");
	close(pipefd[0]);
	nanosleep(&ts, NULL);
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status),
	      "child: status %#x", status);
	err = sva_dev_open("vfio0", NULL, &dev);
	CHECK(!err, "reopen after the kill: %d (the child's group still open?)",
	      err);
	err = sva_bind(dev, NULL, &bind);
	CHECK(!err && !sva_bind_pasid(bind, &pasid), "rebind: %d", err);
	fill_random(src, PAGE, 11);
	memset(dst, 0, PAGE);
	d = desc(SVA_OP_COPY, src, dst, 1000, 0);
	CHECK(!run1(&d, &c), "run");
	CHECK(c.status == SVA_STATUS_SUCCESS && !memcmp(dst, src, 1000),
	      "copy after the kill: status %u", c.status);
	for (size_t i = 1000; i < PAGE; i++)
		CHECK(!dst[i], "byte %zu past the copy: %#x", i, dst[i]);
	munmap(src, PAGE);
	munmap(dst, PAGE);
	return 0;
}

/* Set by print_hook when the engine's sweep found a stale mapping. */
static int stale_seen;

/*
 * A lost unmap (SVA_INJECT_VFIO_SKIP_UNMAP: one page of a chunk left in
 * the container) is caught by the check after the chunk, which asks the
 * container to unmap everything: it warns and unmaps, so nothing stays
 * pinned once the descriptor is done, and the copy is exact.
 */
static int t_stale_caught(void)
{
	SVA_OPTS_INIT(sva_inject_opts, o, .nth = 1, .times = 1);
	uint8_t *src = map_pages(1), *dst = map_pages(1);
	struct sva_completion c = { 0 };
	long lck = vm_locked_kb(), hits;
	struct sva_desc d;

	CHECK(src && dst, "mmap");
	fill_random(src, PAGE, 13);
	memset(dst, 0, PAGE);
	stale_seen = 0;
	CHECK(!sva_inject(SVA_INJECT_VFIO_SKIP_UNMAP, &o), "arm");
	d = desc(SVA_OP_COPY, src, dst, 1000, 0);
	CHECK(!run1(&d, &c), "run");
	hits = sva_inject_count(SVA_INJECT_VFIO_SKIP_UNMAP);
	sva_inject(SVA_INJECT_VFIO_SKIP_UNMAP, NULL);
	CHECK(hits == 1, "%ld unmaps skipped", hits);
	CHECK(c.status == SVA_STATUS_SUCCESS && !memcmp(dst, src, 1000),
	      "copy: status %u", c.status);
	CHECK(stale_seen, "the page left mapped was not reported");
	stale_seen = 0;
	CHECK(vm_locked_kb() == lck, "locked_vm %ld kB, was %ld kB: the page left mapped is still pinned",
	      vm_locked_kb(), lck);
	munmap(src, PAGE);
	munmap(dst, PAGE);
	return 0;
}

struct pin_watch {
	int stop;
	uint64_t max_pinned;
};

static void *pin_watch_run(void *arg)
{
	struct pin_watch *w = arg;

	while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
		SVA_OPTS_INIT(sva_stats, st);
		struct timespec ms = { 0, 1000000 };

		if (!sva_dev_stats(dev, &st) && st.pinned_now > w->max_pinned)
			w->max_pinned = st.pinned_now;
		nanosleep(&ms, NULL);
	}
	return NULL;
}

/*
 * The IOMMU domain's statistics: pages mapped and unmapped grow with the
 * work and are equal once it's done, IOTLB-relevant unmaps with them,
 * pinned_now is 0 while idle and not while a chunk runs (a reset leaves
 * it, the others go to 0); another backend (sim0) reports 0 for all four.
 */
static int t_domain_stats(void)
{
	SVA_OPTS_INIT(sva_stats, a);
	SVA_OPTS_INIT(sva_stats, b);
	SVA_OPTS_INIT(sva_stats, dv);
	uint8_t *src = map_pages(2), *dst = map_pages(2);
	struct sva_completion c = { 0 };
	struct pin_watch w = { 0 };
	struct sva_dev *sd;
	struct sva_bind *sb;
	struct sva_desc d;
	uint32_t sp;
	pthread_t th;

	CHECK(src && dst, "mmap");
	fill_random(src, 2 * PAGE, 51);
	memset(dst, 0, 2 * PAGE);
	CHECK(!sva_bind_stats_reset(bind), "reset");
	CHECK(!sva_bind_stats(bind, &a), "stats");
	CHECK(!a.iommu_pages_mapped && !a.iommu_pages_unmapped &&
	      !a.iotlb_unmaps && !a.pinned_now,
	      "after reset, idle: mapped %llu unmapped %llu iotlb %llu pinned %llu",
	      (unsigned long long)a.iommu_pages_mapped,
	      (unsigned long long)a.iommu_pages_unmapped,
	      (unsigned long long)a.iotlb_unmaps,
	      (unsigned long long)a.pinned_now);
	/* 3000 bytes across a page boundary: 2 chunks, 3 pages and 4 maps. */
	CHECK(!pthread_create(&th, NULL, pin_watch_run, &w), "thread");
	d = desc(SVA_OP_COPY, src + 1000, dst + 2000, 3000, 0);
	c.status = 99;
	CHECK(!run1(&d, &c) && c.status == SVA_STATUS_SUCCESS &&
	      !memcmp(dst + 2000, src + 1000, 3000), "copy: status %u",
	      c.status);
	__atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	CHECK(!sva_bind_stats(bind, &a), "stats");
	CHECK(a.iommu_pages_mapped >= 4 &&
	      a.iommu_pages_mapped == a.iommu_pages_unmapped &&
	      a.iotlb_unmaps > 0 && a.iotlb_unmaps <= a.iommu_pages_unmapped &&
	      !a.pinned_now,
	      "after a COPY: mapped %llu unmapped %llu iotlb %llu pinned %llu",
	      (unsigned long long)a.iommu_pages_mapped,
	      (unsigned long long)a.iommu_pages_unmapped,
	      (unsigned long long)a.iotlb_unmaps,
	      (unsigned long long)a.pinned_now);
	CHECK(w.max_pinned > 0 && w.max_pinned <= 5,
	      "pinned_now seen while the COPY ran: at most %llu (a chunk maps 1 to 5 pages)",
	      (unsigned long long)w.max_pinned);
	d = desc(SVA_OP_FILL, NULL, dst, 2 * PAGE, 0x77);
	CHECK(!run1(&d, &c) && c.status == SVA_STATUS_SUCCESS, "fill: %u",
	      c.status);
	CHECK(!sva_bind_stats(bind, &b), "stats");
	CHECK(b.iommu_pages_mapped > a.iommu_pages_mapped &&
	      b.iommu_pages_unmapped == b.iommu_pages_mapped &&
	      b.iotlb_unmaps > a.iotlb_unmaps && !b.pinned_now,
	      "after a FILL: mapped %llu (was %llu) unmapped %llu iotlb %llu (was %llu) pinned %llu",
	      (unsigned long long)b.iommu_pages_mapped,
	      (unsigned long long)a.iommu_pages_mapped,
	      (unsigned long long)b.iommu_pages_unmapped,
	      (unsigned long long)b.iotlb_unmaps,
	      (unsigned long long)a.iotlb_unmaps,
	      (unsigned long long)b.pinned_now);
	/* The device: every binding's since open, nothing left pinned. */
	CHECK(!sva_dev_stats(dev, &dv), "dev stats");
	CHECK(dv.iommu_pages_mapped >= b.iommu_pages_mapped &&
	      dv.iommu_pages_mapped == dv.iommu_pages_unmapped &&
	      !dv.pinned_now,
	      "device: mapped %llu unmapped %llu pinned %llu",
	      (unsigned long long)dv.iommu_pages_mapped,
	      (unsigned long long)dv.iommu_pages_unmapped,
	      (unsigned long long)dv.pinned_now);
	printf("# vfio0 device: %llu pages mapped, %llu unmapped, %llu IOTLB-relevant unmaps, %llu pinned now\n",
	       (unsigned long long)dv.iommu_pages_mapped,
	       (unsigned long long)dv.iommu_pages_unmapped,
	       (unsigned long long)dv.iotlb_unmaps,
	       (unsigned long long)dv.pinned_now);
	/* Another backend: zero. */
	CHECK(!sva_dev_open("sim0", NULL, &sd) && !sva_bind(sd, NULL, &sb) &&
	      !sva_bind_pasid(sb, &sp), "sim0");
	d = desc(SVA_OP_COPY, src, dst, 3000, 0);
	d.pasid = sp;
	CHECK(sva_submit(sb, &d, 1) == 1 && sva_wait(sb, &c, 1, 1, 10000) == 1 &&
	      c.status == SVA_STATUS_SUCCESS, "sim0 copy");
	CHECK(!sva_bind_stats(sb, &a) && !sva_dev_stats(sd, &b), "sim0 stats");
	CHECK(!a.iommu_pages_mapped && !a.iommu_pages_unmapped &&
	      !a.iotlb_unmaps && !a.pinned_now && !b.iommu_pages_mapped &&
	      !b.iotlb_unmaps && !b.pinned_now && b.descs_completed == 1,
	      "sim0: mapped %llu iotlb %llu pinned %llu",
	      (unsigned long long)b.iommu_pages_mapped,
	      (unsigned long long)b.iotlb_unmaps,
	      (unsigned long long)b.pinned_now);
	sva_unbind(sb);
	sva_dev_close(sd);
	munmap(src, 2 * PAGE);
	munmap(dst, 2 * PAGE);
	return 0;
}

/* print_hook: the engine's last maps check report. */
static char maps_msg[512];

/*
 * Is the first chunk of a one-page COPY mapped and not yet unmapped (its
 * source and destination pages mapped, none unmapped: it holds inval_lock
 * from its map through its transfers, ~200 ms of edu's, to its sweep)?
 * Waits for that, 1: seen; 0: the descriptor got past it first. The
 * binding's statistics were reset before it was submitted.
 */
static int first_chunk_mapped(struct bg *b)
{
	struct timespec ms = { 0, 1000000 };
	SVA_OPTS_INIT(sva_stats, st);

	while (!atomic_load(&b->done)) {
		if (sva_bind_stats(bind, &st))
			return 0;
		if (st.iommu_pages_unmapped)
			return 0;
		if (st.iommu_pages_mapped >= 2)
			return 1;
		nanosleep(&ms, NULL);
	}
	return 0;
}

/*
 * A lost unmap (SVA_INJECT_VFIO_SKIP_UNMAP: the chunk's first page, its
 * source, left in the container) of a page the process munmap()s while
 * the chunk runs: the check after the chunk, which compares the
 * mappings the library made with /proc/self/maps, says that IOVA maps
 * memory the process no longer has; the sweep unmaps it, so once
 * munmap() returns nothing of it stays pinned. The COPY ends
 * FAULT_INVALID at the second chunk (its source gone), the first one's
 * bytes exact.
 * The munmap() is synchronized with the first chunk by the binding's
 * statistics (first_chunk_mapped()), not by a sleep: one before the
 * chunk mapped would prove nothing, one between the chunks (after the
 * check) would fail the case wrongly. munmap() drops the VMA at once and
 * then waits for its event, read under inval_lock (write) after the
 * chunk's check: the check sees the VMA gone. A try whose poll saw the
 * chunk only after it was done (the test's thread kept off a CPU for
 * its ~200 ms) munmaps nothing during the COPY and runs again (4 tries).
 */
static int t_stale_maps_check(void)
{
	SVA_OPTS_INIT(sva_inject_opts, o, .nth = 1, .times = 1);
	static uint8_t src_copy[PAGE];
	char want[64];
	long lck = vm_locked_kb(), hits = 0;
	int tries = 0, inside = 0;

	for (; tries < 4 && !inside; tries++) {
		uint8_t *src = map_pages(1), *dst = map_pages(1);
		struct bg b = { 0 };
		pthread_t th;
		long after = lck;

		CHECK(src && dst, "mmap");
		fill_random(src, PAGE, 17 + tries);
		memcpy(src_copy, src, PAGE);
		memset(dst, 0, PAGE);
		maps_msg[0] = 0;
		snprintf(want, sizeof(want), "IOVA %#llx ",
			 (unsigned long long)(uintptr_t)src);
		CHECK(!sva_bind_stats_reset(bind), "stats reset");
		CHECK(!sva_inject(SVA_INJECT_VFIO_SKIP_UNMAP, &o), "arm");
		b.d = desc(SVA_OP_COPY, src, dst, PAGE, 0);
		CHECK(!pthread_create(&th, NULL, bg_run, &b), "thread");
		inside = first_chunk_mapped(&b);
		if (inside) {
			CHECK(!munmap(src, PAGE), "munmap");
			after = vm_locked_kb();
		}
		pthread_join(th, NULL);
		hits = sva_inject_count(SVA_INJECT_VFIO_SKIP_UNMAP);
		sva_inject(SVA_INJECT_VFIO_SKIP_UNMAP, NULL);
		CHECK(!b.err, "run: %d", b.err);
		printf("# try %d: %s, %llu bytes done, %ld unmap skipped, check: %s",
		       tries + 1, inside ? "munmap() inside the first chunk" :
		       "the first chunk missed", (unsigned long long)b.c.bytes_done,
		       hits, maps_msg[0] ? maps_msg : "(nothing)\n");
		CHECK(hits == 1, "%ld unmaps skipped, 1 armed", hits);
		CHECK(after == lck, "locked_vm %ld kB right after munmap, was %ld kB: the stale mapping outlived it",
		      after, lck);
		if (!inside) {
			CHECK(b.c.status == SVA_STATUS_SUCCESS &&
			      !memcmp(dst, src_copy, PAGE),
			      "nothing munmap()ed: status %u", b.c.status);
			munmap(src, PAGE);
			munmap(dst, PAGE);
			continue;
		}
		CHECK(b.c.status == SVA_STATUS_FAULT_INVALID &&
		      b.c.bytes_done == 2048 &&
		      b.c.fault_addr == (uint64_t)(uintptr_t)src + 2048,
		      "status %u fault %#llx (src %p) done %llu", b.c.status,
		      (unsigned long long)b.c.fault_addr, src,
		      (unsigned long long)b.c.bytes_done);
		CHECK(!memcmp(dst, src_copy, 2048), "the bytes before the fault");
		for (size_t i = 2048; i < PAGE; i++)
			CHECK(!dst[i], "byte %zu past the fault written", i);
		/* The skipped page was mapped while munmap() ran. */
		CHECK(strstr(maps_msg, want) && strstr(maps_msg, "no VMA"),
		      "the maps check didn't flag %s(%s)", want, maps_msg);
		munmap(dst, PAGE);
	}
	CHECK(inside, "the first chunk was never seen mapped in %d tries",
	      tries);
	stale_seen = 0;
	CHECK(vm_locked_kb() == lck, "locked_vm %ld kB at the end, was %ld kB",
	      vm_locked_kb(), lck);
	return 0;
}

/* The process's open file descriptors. */
static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Open vfio0 with SVA_INJECT_VFIO_IOMMUFD_BIND armed once: the open's
 * result, its container into @used, the injections into *hits. */
static int open_injected(struct sva_dev **d, char *used, size_t len,
			 long *hits)
{
	SVA_OPTS_INIT(sva_inject_opts, o, .nth = 1, .times = 1);
	SVA_OPTS_INIT(sva_dev_caps, caps);
	int err;

	*d = NULL;
	used[0] = 0;
	if (sva_inject(SVA_INJECT_VFIO_IOMMUFD_BIND, &o))
		return -EIO;
	err = sva_dev_open("vfio0", NULL, d);
	*hits = sva_inject_count(SVA_INJECT_VFIO_IOMMUFD_BIND);
	sva_inject(SVA_INJECT_VFIO_IOMMUFD_BIND, NULL);
	if (!err && !sva_dev_caps(*d, &caps))
		snprintf(used, len, "%s", caps.container);
	return err;
}

/*
 * The default container's fallback: with iommufd's device bind refused
 * (SVA_INJECT_VFIO_IOMMUFD_BIND), opening vfio0 by default falls back to
 * type1, says why, reports type1, and the device works there (a COPY
 * byte exact, nothing outside it, nothing left pinned); forced iommufd
 * (SVA_VFIO_CONTAINER) with the same injection fails with its -EBUSY,
 * no fallback. Neither leaves a file descriptor behind. Where iommufd
 * isn't here (the stock kernel) the default is type1 and the point is
 * never reached. Closes and reopens this process's device.
 */
static int t_container_fallback(void)
{
	const char *asked = getenv("SVA_VFIO_CONTAINER");
	bool both = container_here("iommufd") && container_here("type1");
	uint8_t *src = map_pages(2), *dst = map_pages(3);
	const size_t len = 2048 + 777, so = 1000, doff = 3001;
	struct sva_dev *d;
	char keep[32], used[32];
	int err, fds;
	long hits, lck;

	CHECK(src && dst, "mmap");
	snprintf(keep, sizeof(keep), "%s", asked ? asked : "");
	sva_unbind(bind);
	sva_dev_close(dev);
	bind = NULL;
	dev = NULL;
	fds = fd_count();
	lck = vm_locked_kb();

	unsetenv("SVA_VFIO_CONTAINER");
	watch_msg[0] = 0;
	watch = "falling back";
	err = open_injected(&dev, used, sizeof(used), &hits);
	watch = NULL;
	CHECK(!err, "default with iommufd's bind refused: %d", err);
	CHECK(!strcmp(used, "type1"), "container %s, not type1", used);
	CHECK(hits == (both ? 1 : 0), "%ld injections (iommufd %s here)",
	      hits, both ? "is" : "isn't");
	if (both) {
		CHECK(strstr(watch_msg, "iommufd") && strstr(watch_msg, "type1"),
		      "no message of the fallback: '%s'", watch_msg);
		printf("# %s", watch_msg);
	}
	err = sva_bind(dev, NULL, &bind);
	CHECK(!err && !sva_bind_pasid(bind, &pasid), "bind: %d", err);
	fill_random(src, 2 * PAGE, 7);
	if (copy_exact(src, so, dst, doff, len, 0xa5))
		return -1;
	sva_unbind(bind);
	sva_dev_close(dev);
	bind = NULL;
	dev = NULL;
	CHECK(vm_locked_kb() == lck, "locked_vm %ld kB, was %ld kB",
	      vm_locked_kb(), lck);
	CHECK(fd_count() == fds, "%d fds after the fallback, %d before",
	      fd_count(), fds);

	if (both) {
		setenv("SVA_VFIO_CONTAINER", "iommufd", 1);
		err = open_injected(&d, used, sizeof(used), &hits);
		if (!err)
			sva_dev_close(d);
		CHECK(err == -EBUSY && hits == 1,
		      "forced iommufd with its bind refused: %d (%s), %ld injections",
		      err, used, hits);
		CHECK(fd_count() == fds, "%d fds after the failed open, %d before",
		      fd_count(), fds);
	}

	if (reopen_as(keep))
		return -1;
	munmap(src, 2 * PAGE);
	munmap(dst, 3 * PAGE);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(void);
} cases[] = {
	{ "enumerate", t_enumerate },
	{ "container", t_container },
	{ "container_fallback", t_container_fallback },
	{ "reserved", t_reserved },
	{ "copy", t_copy },
	{ "fill_crc_compare", t_fill_crc_compare },
	{ "fault_unmapped", t_fault_unmapped },
	{ "msi_window", t_msi_window },
	{ "munmap_during_dma", t_munmap_during_dma },
	{ "mirror_munmap", t_mirror_munmap },
	{ "many_mirrors", t_many_mirrors },
	{ "fork", t_fork },
	{ "group_not_viable", t_group_not_viable },
	{ "stale_caught", t_stale_caught },
	{ "stale_maps_check", t_stale_maps_check },
	{ "domain_stats", t_domain_stats },
	{ "callback_reenters", t_callback_reenters },
	{ "threads_small_queue", t_threads_small_queue },
	{ "pageout_mremap_queued", t_pageout_mremap_queued },
	/* Last: it closes and reopens the device. */
	{ "killed_mid_dma", t_killed_mid_dma },
};

static int wanted(const char *name)
{
	const char *list = getenv("SVA_VFIOTEST_CASES");
	size_t n = strlen(name);

	if (!list || !*list)
		return 1;
	for (const char *p = list; (p = strstr(p, name)); p += n)
		if ((p == list || p[-1] == ',') && (!p[n] || p[n] == ','))
			return 1;
	return 0;
}

/* Library messages go on to stderr; a stale mapping the engine's sweep
 * found (a mapping that outlived its chunk) fails the run, but where
 * t_stale_caught() left it on purpose. */

static int print_hook(enum sva_print_level level, const char *fmt,
		      va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (strstr(msg, "SVA_VFIO_CONTAINER"))
		snprintf(last_msg, sizeof(last_msg), "%s", msg);
	if (strstr(msg, "stayed mapped"))
		stale_seen = 1;
	if (strstr(msg, "maps check:"))
		snprintf(maps_msg, sizeof(maps_msg), "%s", msg);
	if (watch && strstr(msg, watch))
		snprintf(watch_msg, sizeof(watch_msg), "%s", msg);
	if (level == SVA_WARN)
		fputs(msg, stderr);
	return 0;
}

int main(void)
{
	struct timespec t0, t1;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	sva_set_print(print_hook);
	err = sva_dev_open("vfio0", NULL, &dev);
	if (err) {
		printf("vfiotest: not ok open: sva_dev_open(vfio0): %s\n",
		       strerror(-err));
		return 1;
	}
	err = sva_bind(dev, NULL, &bind);
	if (!err)
		err = sva_bind_pasid(bind, &pasid);
	if (err) {
		printf("vfiotest: not ok bind: %s\n", strerror(-err));
		return 1;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!wanted(cases[i].name))
			continue;
		cur = cases[i].name;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (!cases[i].fn()) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			printf("vfiotest: ok %s (%.2f s)\n", cur,
			       (double)(t1.tv_sec - t0.tv_sec) +
			       (t1.tv_nsec - t0.tv_nsec) / 1e9);
		}
	}
	if (bind)
		sva_unbind(bind);
	if (dev)
		sva_dev_close(dev);
	if (stale_seen) {
		printf("vfiotest: not ok stale_mappings: the engine found mappings that outlived their chunk\n");
		failed = 1;
	}
	printf("vfiotest: %s\n", failed ? "FAILED" : "all passed");
	return failed;
}
