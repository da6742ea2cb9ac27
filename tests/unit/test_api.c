// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/* Devices, capabilities, option structs, binding and argument checks. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"

START_TEST(test_devices_enumerate)
{
	struct sva_dev_desc d[8];
	int n = sva_devices(d, 8);

	ck_assert_int_ge(n, 4);
	ck_assert_str_eq(d[0].name, "sim0");
	ck_assert_str_eq(d[3].name, "sim3");
	ck_assert_str_eq(d[0].backend, "sim");
	/* Asking for the count only, and a short array. */
	ck_assert_int_eq(sva_devices(NULL, 0), n);
	memset(d, 0, sizeof(d));
	ck_assert_int_eq(sva_devices(d, 1), n);
	ck_assert_str_eq(d[0].name, "sim0");
	ck_assert_str_eq(d[1].name, "");
	ck_assert_int_eq(sva_devices(NULL, 3), -EINVAL);
}
END_TEST

START_TEST(test_open_bad)
{
	struct sva_dev *dev = (void *)1;
	char longname[64];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[63] = '\0';
	ck_assert_int_eq(sva_dev_open("nosuch0", NULL, &dev), -ENODEV);
	ck_assert_ptr_null(dev);
	ck_assert_int_eq(sva_dev_open("sim9", NULL, &dev), -ENODEV);
	ck_assert_int_eq(sva_dev_open("sim0x", NULL, &dev), -ENODEV);
	ck_assert_int_eq(sva_dev_open(NULL, NULL, &dev), -EINVAL);
	ck_assert_int_eq(sva_dev_open("", NULL, &dev), -EINVAL);
	ck_assert_int_eq(sva_dev_open(longname, NULL, &dev), -EINVAL);
	ck_assert_int_eq(sva_dev_open("sim0", NULL, NULL), -EINVAL);
	ck_assert_int_eq(sva_dev_open_fd(-1, NULL, &dev), -EBADF);
	sva_dev_close(NULL);
}
END_TEST

START_TEST(test_opts_size)
{
	struct big {
		struct sva_dev_opts o;
		uint64_t future;
	} big = { .o = { .sz = sizeof(big), .atc_entries = 64 } };
	SVA_OPTS_INIT(sva_dev_opts, o, .flags = 1u << 30);
	struct sva_dev_opts tiny = { .sz = 2 };
	struct sva_dev_caps caps = { .sz = sizeof(caps) };
	struct sva_dev *dev;

	/* Unknown flags, a too small sz, out-of-range values: -EINVAL. */
	ck_assert_int_eq(sva_dev_open("sim0", &o, &dev), -EINVAL);
	ck_assert_int_eq(sva_dev_open("sim0", &tiny, &dev), -EINVAL);
	o.flags = 0;
	o.pasid_bits = 21;
	ck_assert_int_eq(sva_dev_open("sim0", &o, &dev), -EINVAL);
	/* A newer caller's bigger struct works while the new part is 0. */
	ck_assert_int_eq(sva_dev_open("sim0", &big.o, &dev), 0);
	ck_assert_int_eq(sva_dev_caps(dev, &caps), 0);
	ck_assert_uint_eq(caps.atc_entries, 64);
	sva_dev_close(dev);
	big.future = 1;
	ck_assert_int_eq(sva_dev_open("sim0", &big.o, &dev), -EINVAL);
}
END_TEST

START_TEST(test_caps)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .prq_depth = 8, .fault_batch = 4,
		      .pasid_bits = 5, .queue_depth = 16);
	struct sva_dev_caps caps = { .sz = sizeof(caps) };
	struct { size_t sz; unsigned int flags; } old = { .sz = sizeof(old) };
	struct sva_dev *dev;

	ck_assert_int_eq(sva_dev_open("sim1", &o, &dev), 0);
	ck_assert_str_eq(sva_dev_name(dev), "sim1");
	ck_assert_int_eq(sva_dev_caps(dev, &caps), 0);
	ck_assert_uint_eq(caps.sz, sizeof(caps));
	ck_assert(caps.flags & SVA_CAP_PASID);
	ck_assert(caps.flags & SVA_CAP_ATS);
	ck_assert(caps.flags & SVA_CAP_PRI);
	ck_assert(caps.flags & SVA_CAP_BLOCK_ON_FAULT);
	ck_assert(!(caps.flags & SVA_CAP_HW_SVA));
	ck_assert_uint_eq(caps.pasid_bits, 5);
	ck_assert_uint_eq(caps.prq_depth, 8);
	ck_assert_uint_eq(caps.fault_batch, 4);
	ck_assert_uint_eq(caps.queue_depth, 16);
	ck_assert_uint_eq(caps.atc_entries, 4096);
	ck_assert(caps.page_sizes & 4096);
	ck_assert(caps.ops & (1u << SVA_OP_CRC32C));
	/* An older caller's smaller struct gets its own part only. */
	ck_assert_int_eq(sva_dev_caps(dev, (struct sva_dev_caps *)&old), 0);
	ck_assert_uint_eq(old.sz, sizeof(old));
	ck_assert_uint_eq(old.flags, caps.flags);
	ck_assert_int_eq(sva_dev_caps(dev, NULL), -EINVAL);
	sva_dev_close(dev);

	o.flags = SVA_DEV_NO_PRI | SVA_DEV_NO_ATC;
	ck_assert_int_eq(sva_dev_open("sim1", &o, &dev), 0);
	ck_assert_int_eq(sva_dev_caps(dev, &caps), 0);
	ck_assert(!(caps.flags & SVA_CAP_PRI));
	ck_assert(!(caps.flags & SVA_CAP_BLOCK_ON_FAULT));
	ck_assert_uint_eq(caps.atc_entries, 0);
	sva_dev_close(dev);
}
END_TEST

START_TEST(test_open_fd)
{
	struct sva_dev *dev, *dev2;
	int pfd[2], status;
	pid_t pid;

	ck_assert_int_eq(sva_dev_open("sim2", NULL, &dev), 0);
	ck_assert_int_ge(sva_dev_fd(dev), 0);
	ck_assert_int_eq(sva_dev_open_fd(sva_dev_fd(dev), NULL, &dev2), 0);
	ck_assert_str_eq(sva_dev_name(dev2), "sim2");
	ck_assert_int_ne(sva_dev_fd(dev2), sva_dev_fd(dev));
	sva_dev_close(dev2);
	/* The fd survives the handle that opened it from it. */
	ck_assert_int_eq(fcntl(sva_dev_fd(dev), F_GETFD) >= 0, 1);

	/* Something that isn't a device. */
	ck_assert_int_eq(pipe(pfd), 0);
	ck_assert_int_eq(sva_dev_open_fd(pfd[0], NULL, &dev2), -ENODEV);
	ck_assert_int_eq(sva_dev_open_fd(STDIN_FILENO == pfd[0] ? 99 : 999,
					 NULL, &dev2), -EBADF);
	close(pfd[0]);
	close(pfd[1]);

	/*
	 * Another process opens it from an fd it inherited: the
	 * application's own dup (the handle, and its fd, are the parent's:
	 * -EPERM in the child).
	 */
	pfd[0] = dup(sva_dev_fd(dev));
	ck_assert_int_ge(pfd[0], 0);
	pid = test_fork();
	if (!pid) {
		struct sva_dev *c;
		int ok = sva_dev_fd(dev) == -EPERM &&
			 !sva_dev_open_fd(pfd[0], NULL, &c) &&
			 !strcmp(sva_dev_name(c), "sim2");

		_exit(ok ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(pfd[0]);
	sva_dev_close(dev);
}
END_TEST

START_TEST(test_bind_pasid)
{
	SVA_OPTS_INIT(sva_bind_opts, bo, .flags = 4);
	struct fixture f = { 0 };
	struct sva_bind *b2 = (void *)1, *b3;
	struct sva_dev *d2;
	uint32_t p2 = 0, p3 = 0;

	open_bind(&f, NULL);
	ck_assert_uint_gt(f.pasid, 0);
	/* One mm, one PASID: on the same device and on another one. */
	ck_assert_int_eq(sva_bind(f.dev, NULL, &b2), 0);
	ck_assert_int_eq(sva_bind_pasid(b2, &p2), 0);
	ck_assert_uint_eq(p2, f.pasid);
	ck_assert_int_eq(sva_dev_open("sim1", NULL, &d2), 0);
	ck_assert_int_eq(sva_bind(d2, NULL, &b3), 0);
	ck_assert_int_eq(sva_bind_pasid(b3, &p3), 0);
	ck_assert_uint_eq(p3, f.pasid);
	ck_assert_int_eq(sva_unbind(b3), 0);
	sva_dev_close(d2);
	ck_assert_int_eq(sva_unbind(b2), 0);

	ck_assert_int_eq(sva_bind(f.dev, &bo, &b2), -EINVAL);
	ck_assert_ptr_null(b2);
	bo.flags = 0;
	bo.queue_depth = 1u << 20;
	ck_assert_int_eq(sva_bind(f.dev, &bo, &b2), -EINVAL);
	ck_assert_int_eq(sva_bind(NULL, NULL, &b2), -EINVAL);
	ck_assert_int_eq(sva_bind(f.dev, NULL, NULL), -EINVAL);
	ck_assert_int_eq(sva_bind_pasid(f.bind, NULL), -EINVAL);
	ck_assert_int_eq(sva_unbind(NULL), -EINVAL);
	close_bind(&f);
}
END_TEST

START_TEST(test_pasid_width)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .pasid_bits = 1);
	struct sva_dev *dev;
	struct sva_bind *b;
	uint32_t pasid;

	/* The mm's PASID must fit the device's width. */
	ck_assert_int_eq(sva_dev_open("sim0", &o, &dev), 0);
	ck_assert_int_eq(sva_bind(dev, NULL, &b), 0);
	ck_assert_int_eq(sva_bind_pasid(b, &pasid), 0);
	ck_assert_uint_lt(pasid, 2);
	sva_dev_close(dev);	/* unbinds b */
}
END_TEST

START_TEST(test_submit_bad)
{
	struct fixture f = { 0 };
	uint8_t *buf = map_filled(4 * PAGE, 1);
	struct sva_desc d;
	struct sva_completion c;

	open_bind(&f, NULL);
#define EXPECT_EINVAL(mod) do { \
		d = desc_make(&f, SVA_OP_COPY, 0, buf, buf + 2 * PAGE, PAGE); \
		mod; \
		ck_assert_int_eq(sva_submit(f.bind, &d, 1), -EINVAL); \
	} while (0)
	EXPECT_EINVAL(d.opcode = SVA_OP_MAX);
	EXPECT_EINVAL(d.opcode = 1000);
	EXPECT_EINVAL(d.flags = 1u << 7);
	EXPECT_EINVAL(d.pasid = f.pasid + 1);
	EXPECT_EINVAL(d.rsvd = 1);
	EXPECT_EINVAL(d.len = 0);
	EXPECT_EINVAL(d.len = 1ull << 40);
	EXPECT_EINVAL(d.src = 0);
	EXPECT_EINVAL(d.dst = 0);
	EXPECT_EINVAL(d.src = UINT64_MAX - 100);
	EXPECT_EINVAL(d.dst = d.src + 100);	/* overlap */
	ck_assert_int_eq(sva_submit(f.bind, NULL, 1), -EINVAL);
	ck_assert_int_eq(sva_submit(NULL, &d, 1), -EINVAL);
	ck_assert_int_eq(sva_submit(f.bind, &d, 0), 0);
	/* Nothing in flight: waiting for one is an error, not a hang. */
	ck_assert_int_eq(sva_wait(f.bind, &c, 1, 1, -1), -EINVAL);
	ck_assert_int_eq(sva_wait(f.bind, &c, 0, 0, 0), -EINVAL);
	ck_assert_int_eq(sva_wait(f.bind, NULL, 1, 0, 0), -EINVAL);
	ck_assert_int_eq(sva_wait(f.bind, &c, 1, 0, 0), 0);
	ck_assert_int_eq(sva_inflight(f.bind), 0);

	/* A bad descriptor after good ones: the good ones are queued. */
	{
		struct sva_desc two[2];

		two[0] = desc_make(&f, SVA_OP_NOP, 0, NULL, NULL, 0);
		two[1] = two[0];
		two[1].opcode = 77;
		ck_assert_int_eq(sva_submit(f.bind, two, 2), 1);
		ck_assert_int_eq(sva_wait(f.bind, &c, 1, 1, test_wait_ms()), 1);
		ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	}
	close_bind(&f);
	munmap(buf, 4 * PAGE);
}
END_TEST

START_TEST(test_block_needs_pri)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .flags = SVA_DEV_NO_PRI);
	struct fixture f = { 0 };
	uint8_t *buf = map_filled(2 * PAGE, 1);
	struct sva_desc d;

	open_bind(&f, &o);
	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, buf,
		      buf + PAGE, PAGE);
	ck_assert_int_eq(sva_submit(f.bind, &d, 1), -EINVAL);
	close_bind(&f);
	munmap(buf, 2 * PAGE);
}
END_TEST

START_TEST(test_helpers)
{
	struct sva_desc d = { .opcode = SVA_OP_COPY, .src = 0x1000,
			      .dst = 0x9000, .len = 0x3000 };
	struct sva_completion c = { .status = SVA_STATUS_PAGE_FAULT,
				    .bytes_done = 0x1000 };

	ck_assert_uint_eq(sva_crc32c(0, "123456789", 9), 0xe3069283);
	ck_assert_uint_eq(sva_crc32c(sva_crc32c(0, "1234", 4), "56789", 5),
			  0xe3069283);
	ck_assert_str_eq(sva_status_str(SVA_STATUS_FAULT_INVALID),
			 "invalid access");
	ck_assert_str_eq(sva_status_str(99), "unknown");
	ck_assert_ptr_nonnull(sva_version());

	ck_assert_int_eq(sva_desc_resume(&d, &c), 0);
	ck_assert_uint_eq(d.src, 0x2000);
	ck_assert_uint_eq(d.dst, 0xa000);
	ck_assert_uint_eq(d.len, 0x2000);
	c.bytes_done = 0x2000;
	ck_assert_int_eq(sva_desc_resume(&d, &c), -EINVAL);
	c.status = SVA_STATUS_SUCCESS;
	c.bytes_done = 0;
	ck_assert_int_eq(sva_desc_resume(&d, &c), -EINVAL);
}
END_TEST

static int log_count;
static int count_print(enum sva_print_level level, const char *fmt,
		       va_list ap)
{
	(void)fmt;
	(void)ap;
	log_count += level == SVA_WARN;
	return 0;
}

START_TEST(test_errors_are_logged)
{
	sva_print_fn_t old = sva_set_print(count_print);
	struct sva_dev *dev;

	log_count = 0;
	ck_assert_int_eq(sva_dev_open("sim99", NULL, &dev), -ENODEV);
	ck_assert_int_eq(log_count, 1);
	ck_assert_ptr_eq(sva_set_print(old), count_print);
}
END_TEST

/* A vfio device's caps: a mirror of the process, nothing more. */
START_TEST(test_caps_vfio)
{
	SVA_OPTS_INIT(sva_dev_caps, caps);
	const char *want = getenv("SVA_VFIO_CONTAINER");
	struct fixture f = { 0 };

	test_skip("api: test_devices_enumerate, test_opts_size, test_caps, test_open_fd, test_bind_pasid, test_pasid_width, test_block_needs_pri",
		  "they check sim0..sim3 by name, their options and PASIDs (test_caps_vfio checks this device's caps)");
	open_bind(&f, NULL);
	ck_assert_int_eq(sva_dev_caps(f.dev, &caps), 0);
	ck_assert(dev_is_vfio(f.dev));
	ck_assert_uint_eq(caps.flags, SVA_CAP_MIRROR | SVA_CAP_BLOCK_ON_FAULT);
	ck_assert_uint_eq(caps.pasid_bits, 0);
	ck_assert_uint_eq(f.pasid, 0);	/* requests carry the RID alone */
	ck_assert_uint_eq(caps.prq_depth, 0);
	ck_assert_uint_eq(caps.atc_entries, 0);
	ck_assert_uint_eq(caps.devmem_size, 0);
	ck_assert_uint_eq(caps.page_sizes, PAGE);
	ck_assert(caps.ops & (1u << SVA_OP_COPY));
	ck_assert(!(caps.ops & (1u << SVA_OP_PREFETCH)));
	if (want && *want)
		ck_assert_str_eq(caps.container, want);
	ck_assert_str_ne(caps.pci_addr, "");
	close_bind(&f);
}
END_TEST

Suite *api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("api");

	tcase_set_timeout(tc, 60);
	if (test_on_vfio()) {
		/* The rest checks the software devices sim0..sim3 by name,
		 * their options and PASIDs: test_caps_vfio() says so. */
		tcase_add_test(tc, test_open_bad);
		tcase_add_test(tc, test_caps_vfio);
		tcase_add_test(tc, test_submit_bad);
		tcase_add_test(tc, test_helpers);
		tcase_add_test(tc, test_errors_are_logged);
		suite_add_tcase(s, tc);
		return s;
	}
	tcase_add_test(tc, test_devices_enumerate);
	tcase_add_test(tc, test_open_bad);
	tcase_add_test(tc, test_opts_size);
	tcase_add_test(tc, test_caps);
	tcase_add_test(tc, test_open_fd);
	tcase_add_test(tc, test_bind_pasid);
	tcase_add_test(tc, test_pasid_width);
	tcase_add_test(tc, test_submit_bad);
	tcase_add_test(tc, test_block_needs_pri);
	tcase_add_test(tc, test_helpers);
	tcase_add_test(tc, test_errors_are_logged);
	suite_add_tcase(s, tc);
	return s;
}
