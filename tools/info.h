/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/* sva-info: what PCI config space and sysfs say of a device's SVA path. */
#ifndef SVA_INFO_H
#define SVA_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Where sva-info reads the machine from: each is redirectable so that test
 * fixtures can stand in for every part of it (sva-info.c's options).
 */
struct info_paths {
	const char *sys;	/* sysfs: /sys */
	const char *proc;	/* procfs: /proc (only cmdline is read) */
	const char *dev;	/* device nodes: /dev (existence only) */
	const char *release;	/* kernel release: uname -r, or Debian's */
	const char *machine;	/* architecture: uname -m */
};

extern struct info_paths info_paths;

/* info-sysfs.c: small readers; every path is printf-formatted. */
const char *info_attr(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const char *info_link_base(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
ssize_t info_read(void *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool info_exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool info_is_bdf(const char *name);
void info_copy(char *dst, size_t len, const char *src);

/* info-pci.c: PCI config space. */
struct pci_sva_caps {
	bool config_full;	/* extended config space was readable */
	bool config_partial;	/* only the unprivileged 64 (128) bytes */
	bool pasid, ats, pri;
	unsigned int pasid_width;	/* PASID cap: max PASID width */
	bool pasid_exec, pasid_priv;
	unsigned int ats_queue_depth;
	uint32_t pri_max_requests;	/* outstanding page request capacity */
};

/* Parse PCI config space @cfg of @len bytes (64, 256 or 4096). */
void pci_parse_sva_caps(const uint8_t *cfg, size_t len,
			struct pci_sva_caps *caps);
/* Offset of extended capability @id, or 0. */
size_t pci_find_ext_cap(const uint8_t *cfg, size_t len, uint16_t id);
/* PCIe device/port type (PCI_EXP_TYPE_*), or -1 for conventional PCI. */
int pci_express_type(const uint8_t *cfg, size_t len);
bool pci_multifunction(const uint8_t *cfg, size_t len);
uint16_t pci_rd16(const uint8_t *cfg, size_t off);
uint32_t pci_rd32(const uint8_t *cfg, size_t off);

/* info-virtio.c: virtio devices and their negotiated features. */
#define VIRTIO_F_ACCESS_PLATFORM 33

struct virtio_info {
	char name[32];		/* virtioN */
	char device_id[16];	/* "0x0001" */
	char parent[64];	/* PCI BDF of virtio-pci, else "" */
	bool features_known;
	bool access_platform;	/* bit 33 negotiated */
};

int virtio_scan(struct virtio_info *v, int max);
const struct virtio_info *virtio_of_pci(const struct virtio_info *v, int n,
					const char *bdf);
const char *virtio_kind(const char *device_id);

/* info-acs.c: why an IOMMU group holds more than one device. */
struct acs_finding {
	char bdf[32];
	enum acs_kind {
		ACS_CAP_NONE,		/* port without ACS capability */
		ACS_CTRL_OFF,		/* ACS present, required controls off */
		ACS_MF_NONE,		/* multifunction function without ACS */
		ACS_MF_CTRL_OFF,
		ACS_PCI_BRIDGE,		/* PCIe-to-PCI bridge: devices alias */
		ACS_CONVENTIONAL,	/* conventional PCI function */
		ACS_UNREADABLE,		/* config space unreadable (not root) */
	} kind;
	uint16_t missing;	/* ACS control bits required but off */
	bool on_path;		/* on the device's own path (set by caller) */
};

/* Findings from the device at @bdf up to its root port; returns count. */
int acs_walk(const char *bdf, struct acs_finding *f, int max);
/* Does @f stop pci_enable_pasid() (ACS RR|UF on the path)? */
bool acs_blocks_pasid(const struct acs_finding *f);
void acs_describe(const struct acs_finding *f, char *buf, size_t len);

/* info-iommu.c: IOMMU hardware units and user-space IOMMU interfaces. */
struct iommu_unit {
	char name[32];		/* dmar0, ivhd0, ... */
	enum { IOMMU_INTEL, IOMMU_AMD, IOMMU_OTHER } vendor;
	bool have_caps;
	unsigned long long caps;	/* Intel ecap, AMD EFR */
	bool pasid, prs, scalable;	/* AMD: GT, PPR; scalable unused */
};

int iommu_units(struct iommu_unit *u, int max);
const char *iommu_unit_lacks(const struct iommu_unit *u, char *buf,
			     size_t len);

struct uapi_nodes {
	bool iommufd;		/* /dev/iommu */
	bool vfio_container;	/* /dev/vfio/vfio */
	bool vfio_cdev_dir;	/* /dev/vfio/devices */
};

struct dev_uapi {
	char cdev[64];		/* /dev/vfio/devices/vfioN, if usable */
	char group_node[64];	/* /dev/vfio/<group>, if usable */
	char why[160];		/* why neither, or a limit */
};

void uapi_nodes_read(struct uapi_nodes *n);
void dev_uapi_read(const char *bdf, const char *drv, const char *gid,
		   bool viable, const struct uapi_nodes *n, struct dev_uapi *u);

/* info-policy.c: kernel release facts and command-line IOMMU policy. */
enum kernel_sva { KSVA_UNKNOWN, KSVA_REFUSED };

struct kernel_policy {
	char release[128], machine[32];
	unsigned int ver[3];
	bool parsed;
	enum kernel_sva sva;
	const char *why;	/* the table's reason, or NULL */
};

struct cmdline_policy {
	char params[512];	/* the IOMMU parameters found, as given */
	char off[64];		/* parameter that disabled the IOMMU, or "" */
	char pt[64];		/* parameter that set passthrough, or "" */
	int passthrough;	/* -1 not given, 0, 1 */
	int strict;		/* -1 not given, 0 lazy, 1 strict */
	int sm;			/* -1 not given, 0 sm_off, 1 sm_on */
};

void kernel_policy_read(struct kernel_policy *k);
void cmdline_read(struct cmdline_policy *c);
const char *domain_type_note(const char *type);

/* info-resv.c: what a reserved region type means for device DMA. */
const char *reserved_note(const char *type);

/* info-verdict.c: blocking reasons, in priority order. */
enum reason {
	R_VIRTIO_BYPASS,
	R_CONFIG_UNREADABLE,
	R_CONVENTIONAL,
	R_NO_PASID,
	R_NO_ATS,
	R_NO_PRI,
	R_KERNEL_REFUSES,
	R_IOMMU_OFF,
	R_IDENTITY,
	R_IOMMU_NO_PASID,
	R_ACS,
	R_NR
};

struct verdict {
	unsigned int mask;		/* 1 << reason */
	char detail[R_NR][192];
};

void verdict_add(struct verdict *v, enum reason r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int verdict_first(const struct verdict *v);	/* -1: SVA possible */
const char *reason_id(enum reason r);
const char *reason_text(enum reason r);
const char *reason_remedy(enum reason r);
/* "text" or "text: detail" */
const char *reason_line(const struct verdict *v, enum reason r, char *buf,
			size_t len);

/* info-json.c */
void json_str(const char *s);
void json_kv_str(const char *key, const char *val, bool last);
void json_kv_bool(const char *key, bool val, bool last);

#endif /* SVA_INFO_H */
