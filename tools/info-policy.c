// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Kernel policy: what the running kernel release is known to do with SVA,
 * and the IOMMU parameters of its command line (on/off, passthrough,
 * scalable mode, strict or lazy IOTLB flush).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "info.h"

struct kernel_fact {
	const char *arch;		/* "x86": x86_64 and i?86 */
	unsigned int from[3];		/* first release affected */
	unsigned int until[3];		/* first release not affected */
	enum kernel_sva sva;
	const char *why;
};

/*
 * What a kernel release does with iommu_sva_bind_device(), one line per
 * fact checked in a kernel tree. Add a line only with such a check.
 *
 * - "iommu: disable SVA when CONFIG_X86 is set": a 6.12 stable-only patch;
 *   iommu_sva_bind_device() returns -EOPNOTSUPP whenever CONFIG_X86 is set.
 *   Debian's linux 6.12.69-1 changelog lists it under upstream
 *   ChangeLog-6.12.64, so upstream 6.12.64 is the first release with it and
 *   Debian's 6.12.69 the first Debian package; Debian's linux-source-6.12
 *   (6.12.117) still has it in drivers/iommu/iommu-sva.c.
 */
static const struct kernel_fact kernel_facts[] = {
	{ "x86", { 6, 12, 64 }, { 6, 13, 0 }, KSVA_REFUSED,
	  "6.12 stable from 6.12.64 on x86: iommu_sva_bind_device() "
	  "returns -EOPNOTSUPP (\"iommu: disable SVA when CONFIG_X86 is set\")" },
};

static int ver_cmp(const unsigned int *a, const unsigned int *b)
{
	for (int i = 0; i < 3; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return 0;
}

static bool arch_is(const char *machine, const char *arch)
{
	if (!strcmp(arch, "x86"))
		return !strncmp(machine, "x86", 3) ||
		       (machine[0] == 'i' && !strcmp(machine + 2, "86"));
	return !strcmp(machine, arch);
}

/*
 * Debian's older release names carry an ABI number, not the stable
 * version ("6.1.0-18-amd64"); its uname -v has the real one
 * ("... Debian 6.1.76-1 ..."). Newer ones ("6.12.69+deb12-amd64") agree.
 */
static void release_version(struct kernel_policy *k, const char *version)
{
	const char *deb = version ? strstr(version, "Debian ") : NULL;
	const char *s = deb ? deb + 7 : k->release;

	k->parsed = sscanf(s, "%u.%u.%u", &k->ver[0], &k->ver[1],
			   &k->ver[2]) >= 2;
}

void kernel_policy_read(struct kernel_policy *k)
{
	struct utsname u;
	bool real = !info_paths.release;

	memset(k, 0, sizeof(*k));
	uname(&u);
	info_copy(k->release, sizeof(k->release),
		  real ? u.release : info_paths.release);
	info_copy(k->machine, sizeof(k->machine),
		  info_paths.machine ? info_paths.machine : u.machine);
	release_version(k, real ? u.version : NULL);
	for (size_t i = 0; k->parsed &&
	     i < ARRAY_SIZE(kernel_facts); i++) {
		const struct kernel_fact *f = &kernel_facts[i];

		if (arch_is(k->machine, f->arch) &&
		    ver_cmp(k->ver, f->from) >= 0 &&
		    ver_cmp(k->ver, f->until) < 0) {
			k->sva = f->sva;
			k->why = f->why;
		}
	}
}

/* Kernel boolean parameter (kstrtobool): 1 y Y on, 0 n N off. */
static int param_bool(const char *v)
{
	if (!strcmp(v, "1") || *v == 'y' || *v == 'Y' || !strcmp(v, "on"))
		return 1;
	if (!strcmp(v, "0") || *v == 'n' || *v == 'N' || !strcmp(v, "off"))
		return 0;
	return -1;
}

/* intel_iommu=on,sm_on,... (Documentation/admin-guide/kernel-parameters) */
static void intel_iommu_opts(struct cmdline_policy *c, const char *tok)
{
	char opts[128], *save = NULL;

	info_copy(opts, sizeof(opts), tok + strlen("intel_iommu="));
	for (char *o = strtok_r(opts, ",", &save); o;
	     o = strtok_r(NULL, ",", &save)) {
		if (!strcmp(o, "off"))
			info_copy(c->off, sizeof(c->off), tok);
		else if (!strcmp(o, "on"))
			c->off[0] = '\0';
		else if (!strcmp(o, "sm_on"))
			c->sm = 1;
		else if (!strcmp(o, "sm_off"))
			c->sm = 0;
		else if (!strcmp(o, "strict"))
			c->strict = 1;
	}
}

static void cmdline_param(struct cmdline_policy *c, const char *tok)
{
	size_t used = strlen(c->params);

	if (strncmp(tok, "iommu", 5) && strncmp(tok, "intel_iommu=", 12) &&
	    strncmp(tok, "amd_iommu=", 10))
		return;
	snprintf(c->params + used, sizeof(c->params) - used, "%s%s",
		 used ? " " : "", tok);
	if (!strcmp(tok, "iommu=off") || !strcmp(tok, "amd_iommu=off")) {
		info_copy(c->off, sizeof(c->off), tok);
	} else if (!strcmp(tok, "iommu=pt")) {
		c->passthrough = 1;
		info_copy(c->pt, sizeof(c->pt), tok);
	} else if (!strcmp(tok, "iommu=nopt")) {
		c->passthrough = 0;
	} else if (!strncmp(tok, "iommu.passthrough=", 18)) {
		c->passthrough = param_bool(tok + 18);
		info_copy(c->pt, sizeof(c->pt), tok);
	} else if (!strncmp(tok, "iommu.strict=", 13)) {
		c->strict = param_bool(tok + 13);
	} else if (!strncmp(tok, "intel_iommu=", 12)) {
		intel_iommu_opts(c, tok);
	}
}

void cmdline_read(struct cmdline_policy *c)
{
	char line[4096], *save = NULL;

	memset(c, 0, sizeof(*c));
	c->passthrough = c->strict = c->sm = -1;
	info_attr(line, sizeof(line), "%s/cmdline", info_paths.proc);
	for (char *t = strtok_r(line, " \t", &save); t;
	     t = strtok_r(NULL, " \t", &save)) {
		if (!strcmp(t, "--"))
			break;	/* the rest is init's */
		cmdline_param(c, t);
	}
	if (c->passthrough != 1)
		c->pt[0] = '\0';
}

/* /sys/kernel/iommu_groups/N/type (iommu_group_show_type()). */
const char *domain_type_note(const char *type)
{
	if (!strcmp(type, "identity"))
		return "identity: DMA untranslated, bypasses the IOMMU";
	if (!strcmp(type, "DMA"))
		return "translated, strict IOTLB flush on unmap";
	if (!strcmp(type, "DMA-FQ"))
		return "translated, lazy IOTLB flush (flush queue): "
		       "unmapped IOVAs stay reachable until the queue drains";
	if (!strcmp(type, "blocked"))
		return "blocked: no DMA at all";
	if (!strcmp(type, "unmanaged"))
		return "owned by a driver or user space (VFIO, iommufd)";
	return "unknown";
}
