// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Why a device can't share a process's address space, one reason per
 * obstacle, and the verdict: "SVA possible" or the first reason in this
 * order (man/sva-info.1 documents it). The order goes from what no setting
 * can change to what a setting can: the device's own nature and hardware,
 * then the kernel, then the IOMMU's configuration, then the PCIe topology.
 * A remedy goes with each reason for --explain.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "info.h"

static const struct {
	const char *id, *text, *remedy;
} reasons[R_NR] = {
	[R_VIRTIO_BYPASS] = { "virtio-bypass",
		"never SVA: virtio without VIRTIO_F_ACCESS_PLATFORM "
		"(bypasses the IOMMU)",
		"enable VIRTIO_F_ACCESS_PLATFORM (QEMU: iommu_platform=on,"
		"ats=on on the virtio device, with a vIOMMU such as -device "
		"intel-iommu,intremap=on,device-iotlb=on); for SVA itself, "
		"use a device with ATS/PRI/PASID" },
	[R_CONFIG_UNREADABLE] = { "config-unreadable",
		"extended config space unreadable (run as root)",
		"run sva-info as root: other users read only the first 64 "
		"bytes of config space" },
	[R_CONVENTIONAL] = { "conventional-pci",
		"no extended config space (conventional PCI)",
		"use a PCIe device with ATS/PRI/PASID" },
	[R_NO_PASID] = { "no-pasid", "no PASID capability",
		"use a device with ATS/PRI/PASID (some hide PASID unless "
		"enabled in the device's firmware or BIOS)" },
	[R_NO_ATS] = { "no-ats", "no ATS capability",
		"use a device with ATS/PRI/PASID" },
	[R_NO_PRI] = { "no-pri",
		"no PRI: device faults can't be served, memory must be pinned",
		"use a device with ATS/PRI/PASID, or pin and pre-fault all "
		"memory the device touches" },
	[R_KERNEL_REFUSES] = { "kernel-refuses",
		"kernel refuses SVA binding",
		"boot a kernel release that binds SVA on this architecture "
		"(x86: a 6.12 stable before 6.12.64, or another series); the "
		"known releases are the table in tools/info-policy.c" },
	[R_IOMMU_OFF] = { "iommu-off",
		"no IOMMU group: IOMMU absent or disabled",
		"enable VT-d / AMD-Vi (IOMMU) in the BIOS/firmware, boot with "
		"intel_iommu=on (Intel) and without iommu=off or "
		"amd_iommu=off" },
	[R_IDENTITY] = { "identity-domain",
		"default domain identity: DMA bypasses the IOMMU",
		"boot without iommu=pt and with iommu.passthrough=0, or "
		"unbind the device and write DMA to "
		"/sys/kernel/iommu_groups/<group>/type" },
	[R_IOMMU_NO_PASID] = { "iommu-no-pasid",
		"IOMMU can't do PASID/page requests",
		"boot with intel_iommu=on,sm_on (scalable mode); enable "
		"scalable mode / PASID in the BIOS, or use a platform whose "
		"IOMMU has PASID and page requests (PRS/PPR)" },
	[R_ACS] = { "acs",
		"ACS off on the path to the root port: the kernel won't "
		"enable PASID",
		"enable ACS (and ARI) in firmware/BIOS, or move the device to "
		"a slot whose root port and switch ports have ACS" },
};

void verdict_add(struct verdict *v, enum reason r, const char *fmt, ...)
{
	va_list ap;

	v->mask |= 1u << r;
	va_start(ap, fmt);
	vsnprintf(v->detail[r], sizeof(v->detail[r]), fmt, ap);
	va_end(ap);
}

int verdict_first(const struct verdict *v)
{
	for (int r = 0; r < R_NR; r++)
		if (v->mask & (1u << r))
			return r;
	return -1;
}

const char *reason_id(enum reason r)
{
	return reasons[r].id;
}

const char *reason_text(enum reason r)
{
	return reasons[r].text;
}

const char *reason_remedy(enum reason r)
{
	return reasons[r].remedy;
}

const char *reason_line(const struct verdict *v, enum reason r, char *buf,
			size_t len)
{
	snprintf(buf, len, "%s%s%s", reasons[r].text,
		 *v->detail[r] ? ": " : "", v->detail[r]);
	return buf;
}
