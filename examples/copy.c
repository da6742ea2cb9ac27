/*
 * copy: the smallest complete libsva program. Opens the software device
 * sim0 (no module, no hardware), binds the process's address space to it,
 * has the device copy a buffer into memory the process never touched (so
 * every destination page is faulted in through page requests, the
 * descriptor waiting for them: block-on-fault), checks the bytes and prints
 * the binding's counters.
 *
 * Build against an installed libsva with nothing but pkg-config:
 *   cc -o copy copy.c $(pkg-config --cflags --libs libsva)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sva/sva.h>

#define LEN (1u << 20)

static int fail(const char *what, int err)
{
	fprintf(stderr, "copy: %s: %s\n", what, strerror(-err));
	return 1;
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "sim0";
	SVA_OPTS_INIT(sva_stats, st);
	struct sva_completion c;
	struct sva_bind *bind;
	struct sva_dev *dev;
	uint8_t *src, *dst;
	uint32_t pasid;
	int err, ret = 1;

	src = malloc(LEN);
	/* Fresh anonymous memory: no page present until someone touches it. */
	dst = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!src || dst == MAP_FAILED)
		return fail("memory", -ENOMEM);
	for (size_t i = 0; i < LEN; i++)
		src[i] = (uint8_t)(i * 7 + i / 4096);

	err = sva_dev_open(name, NULL, &dev);
	if (err)
		return fail("sva_dev_open", err);
	err = sva_bind(dev, NULL, &bind);
	if (err) {
		fail("sva_bind", err);
		goto close;
	}
	err = sva_bind_pasid(bind, &pasid);
	if (err) {
		fail("sva_bind_pasid", err);
		goto unbind;
	}

	struct sva_desc d = {
		.opcode = SVA_OP_COPY,
		.flags = SVA_DESC_BLOCK_ON_FAULT,
		.pasid = pasid,
		.src = (uintptr_t)src,
		.dst = (uintptr_t)dst,
		.len = LEN,
		.user_data = 42,
	};

	err = sva_submit(bind, &d, 1);
	if (err != 1) {
		fail("sva_submit", err < 0 ? err : -EAGAIN);
		goto unbind;
	}
	err = sva_wait(bind, &c, 1, 1, -1);
	if (err != 1) {
		fail("sva_wait", err < 0 ? err : -ETIMEDOUT);
		goto unbind;
	}
	if (c.status != SVA_STATUS_SUCCESS || c.bytes_done != LEN) {
		fprintf(stderr, "copy: completion %s, %" PRIu64 " bytes\n",
			sva_status_str(c.status), c.bytes_done);
		goto unbind;
	}
	if (memcmp(src, dst, LEN)) {
		fprintf(stderr, "copy: the destination differs\n");
		goto unbind;
	}
	err = sva_bind_stats(bind, &st);
	if (err) {
		fail("sva_bind_stats", err);
		goto unbind;
	}
	printf("copy: %s (pasid %" PRIu32 "): %u bytes copied and verified\n",
	       sva_dev_name(dev), pasid, LEN);
	printf("stats: translations %" PRIu64 " page_requests %" PRIu64
	       " faults_resolved %" PRIu64 " descs_completed %" PRIu64
	       " bytes_done %" PRIu64 "\n", st.translations,
	       st.page_requests, st.faults_resolved, st.descs_completed,
	       st.bytes_done);
	ret = 0;
unbind:
	err = sva_unbind(bind);
	if (err && !ret)
		ret = fail("sva_unbind", err);
close:
	sva_dev_close(dev);
	munmap(dst, LEN);
	free(src);
	return ret;
}
