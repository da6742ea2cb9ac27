// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * sva-info: the devices of this machine and what stands between each and
 * shared virtual addressing: virtio devices that bypass the IOMMU, PCIe
 * PASID/ATS/PRI capabilities, the kernel release and its IOMMU policy, the
 * IOMMU units, the IOMMU group (members, why it is shared, viability,
 * default domain, reserved regions), the user-space IOMMU interfaces, NUMA
 * node, DRM devices, and the libsva backends present. Each PCI device gets
 * a one-line verdict: "SVA possible" or the first blocking reason.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_NUMA
#include <numa.h>
#endif
#ifdef HAVE_DRM
#include <xf86drm.h>
#endif

#include "sva/sva.h"
#include "info.h"

struct info_paths info_paths = { .sys = "/sys", .proc = "/proc",
				 .dev = "/dev" };
static bool json, explain;
static bool first_item;

#define MAX_UNITS 32
#define MAX_VIRTIO 64
#define MAX_RESV 16
#define MAX_ACS 16
#define MAX_MEMBERS 32

/* What holds for the whole machine, read once. */
static struct {
	struct kernel_policy kernel;
	struct cmdline_policy cmdline;
	struct iommu_unit units[MAX_UNITS];
	int nr_units;
	struct uapi_nodes uapi;
	struct virtio_info virtio[MAX_VIRTIO];
	int nr_virtio;
} mach;

struct resv_region {
	unsigned long long start, end;
	char type[24];
};

struct group_info {
	char id[32], type[32];
	char members[1024];
	char member[MAX_MEMBERS][32];
	int nr_members;
	struct resv_region resv[MAX_RESV];
	int nr_resv;
	bool viable;
};

struct pci_report {
	char bdf[32], vendor[16], device[16], class[16], drv[64], node[16];
	char gid[32], unit[32];
	struct pci_sva_caps caps;
	struct group_info g;
	const struct virtio_info *virtio;
	struct acs_finding acs[MAX_ACS];
	int nr_acs;
	struct dev_uapi uapi;
	struct verdict v;
};

static bool safe_driver(const char *drv)
{
	return !*drv || !strcmp(drv, "vfio-pci") || !strcmp(drv, "pci-stub") ||
	       !strcmp(drv, "pcieport");
}

static void json_sep(void)
{
	if (!first_item)
		printf(",");
	first_item = false;
}

static void group_members(struct group_info *g)
{
	char path[PATH_MAX], drv[64];
	struct dirent **names;
	int n;

	snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%s/devices",
		 info_paths.sys, g->id);
	n = scandir(path, &names, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		size_t used = strlen(g->members);

		if (name[0] != '.') {
			info_link_base(drv, sizeof(drv),
				       "%s/bus/pci/devices/%s/driver",
				       info_paths.sys, name);
			g->viable &= safe_driver(drv);
			if (g->nr_members < MAX_MEMBERS)
				info_copy(g->member[g->nr_members],
					  sizeof(g->member[0]), name);
			g->nr_members++;
			snprintf(g->members + used, sizeof(g->members) - used,
				 "%s%s%s%s%s", used ? " " : "", name,
				 *drv ? "(" : "", drv, *drv ? ")" : "");
		}
		free(names[i]);
	}
	if (n >= 0)
		free(names);
}

static void group_regions(struct group_info *g)
{
	char path[PATH_MAX], line[256];
	FILE *fp;

	snprintf(path, sizeof(path),
		 "%s/kernel/iommu_groups/%s/reserved_regions", info_paths.sys,
		 g->id);
	fp = fopen(path, "r");
	while (fp && fgets(line, sizeof(line), fp) && g->nr_resv < MAX_RESV) {
		struct resv_region *r = &g->resv[g->nr_resv];

		if (sscanf(line, "%llx %llx %23s", &r->start, &r->end,
			   r->type) == 3)
			g->nr_resv++;
	}
	if (fp)
		fclose(fp);
}

static void group_read(const char *id, struct group_info *g)
{
	memset(g, 0, sizeof(*g));
	info_copy(g->id, sizeof(g->id), id);
	info_attr(g->type, sizeof(g->type), "%s/kernel/iommu_groups/%s/type",
		  info_paths.sys, id);
	g->viable = true;
	group_members(g);
	group_regions(g);
}

/* Add the findings on @bdf's path that @p doesn't hold yet. */
static void acs_add_path(struct pci_report *p, const char *bdf, bool own)
{
	struct acs_finding f[MAX_ACS];
	int n = acs_walk(bdf, f, MAX_ACS);

	for (int i = 0; i < n && p->nr_acs < MAX_ACS; i++) {
		bool seen = false;

		for (int j = 0; j < p->nr_acs; j++)
			seen |= !strcmp(p->acs[j].bdf, f[i].bdf);
		if (seen)
			continue;
		f[i].on_path = own;
		p->acs[p->nr_acs++] = f[i];
	}
}

/*
 * Why the group is shared: what fails ACS on any member's path to its root
 * port. Only what is on the device's own path stops its PASID.
 */
static void acs_group(struct pci_report *p)
{
	int n = p->g.nr_members < MAX_MEMBERS ? p->g.nr_members : MAX_MEMBERS;

	acs_add_path(p, p->bdf, true);
	for (int i = 0; i < n; i++)
		acs_add_path(p, p->g.member[i], false);
}

static void pci_read(const char *bdf, struct pci_report *p)
{
	const char *sys = info_paths.sys;
	static uint8_t cfg[4096];
	ssize_t n;

	memset(p, 0, sizeof(*p));
	info_copy(p->bdf, sizeof(p->bdf), bdf);
	info_attr(p->vendor, sizeof(p->vendor), "%s/bus/pci/devices/%s/vendor",
		  sys, bdf);
	info_attr(p->device, sizeof(p->device), "%s/bus/pci/devices/%s/device",
		  sys, bdf);
	info_attr(p->class, sizeof(p->class), "%s/bus/pci/devices/%s/class",
		  sys, bdf);
	info_attr(p->node, sizeof(p->node), "%s/bus/pci/devices/%s/numa_node",
		  sys, bdf);
	info_link_base(p->drv, sizeof(p->drv), "%s/bus/pci/devices/%s/driver",
		       sys, bdf);
	info_link_base(p->gid, sizeof(p->gid),
		       "%s/bus/pci/devices/%s/iommu_group", sys, bdf);
	info_link_base(p->unit, sizeof(p->unit), "%s/bus/pci/devices/%s/iommu",
		       sys, bdf);
	n = info_read(cfg, sizeof(cfg), "%s/bus/pci/devices/%s/config", sys,
		      bdf);
	pci_parse_sva_caps(cfg, n > 0 ? (size_t)n : 0, &p->caps);
	if (*p->gid)
		group_read(p->gid, &p->g);
	if (p->g.nr_members > 1)
		acs_group(p);
	p->virtio = virtio_of_pci(mach.virtio, mach.nr_virtio, bdf);
	dev_uapi_read(bdf, p->drv, p->gid, p->g.viable, &mach.uapi, &p->uapi);
}

static void judge_device(struct pci_report *p)
{
	const struct pci_sva_caps *c = &p->caps;
	struct verdict *v = &p->v;

	if (p->virtio && p->virtio->features_known &&
	    !p->virtio->access_platform)
		verdict_add(v, R_VIRTIO_BYPASS, "%s (%s)", p->virtio->name,
			    virtio_kind(p->virtio->device_id));
	if (c->config_partial)
		verdict_add(v, R_CONFIG_UNREADABLE, "%s", "");
	else if (!c->config_full)
		verdict_add(v, R_CONVENTIONAL, "%s", "");
	if (c->config_full && !c->pasid)
		verdict_add(v, R_NO_PASID, "%s", "");
	if (c->config_full && !c->ats)
		verdict_add(v, R_NO_ATS, "%s", "");
	if (c->config_full && !c->pri)
		verdict_add(v, R_NO_PRI, "%s", "");
}

/* The IOMMU unit that translates for @p: its iommu link, else every one. */
static void judge_iommu_unit(struct pci_report *p)
{
	char lacks[96];

	if (mach.cmdline.sm == 0) {
		verdict_add(&p->v, R_IOMMU_NO_PASID,
			    "scalable mode off on the command line (sm_off)");
		return;
	}
	for (int i = 0; i < mach.nr_units; i++) {
		const struct iommu_unit *u = &mach.units[i];

		if (*p->unit && strcmp(p->unit, u->name))
			continue;
		if (*iommu_unit_lacks(u, lacks, sizeof(lacks))) {
			verdict_add(&p->v, R_IOMMU_NO_PASID,
				    "%s lacks %s (%s %#llx)", u->name, lacks,
				    u->vendor == IOMMU_INTEL ? "ecap" :
				    "features", u->caps);
			return;
		}
	}
}

static void judge_platform(struct pci_report *p)
{
	const struct cmdline_policy *cl = &mach.cmdline;
	struct verdict *v = &p->v;

	if (mach.kernel.sva == KSVA_REFUSED)
		verdict_add(v, R_KERNEL_REFUSES, "%s %s: %s",
			    mach.kernel.release, mach.kernel.machine,
			    mach.kernel.why);
	if (!*p->gid) {
		verdict_add(v, R_IOMMU_OFF, "%s%s", *cl->off ? cl->off :
			    mach.nr_units ? "device not behind an IOMMU unit" :
			    "no IOMMU registered in /sys/class/iommu",
			    *cl->off ? " on the command line" : "");
		return;
	}
	if (!strcmp(p->g.type, "identity"))
		verdict_add(v, R_IDENTITY, "%s%s", *cl->pt ? cl->pt : "",
			    *cl->pt ? " on the command line" : "");
	judge_iommu_unit(p);
	for (int i = 0; i < p->nr_acs; i++) {
		char why[160];

		if (!p->acs[i].on_path || !acs_blocks_pasid(&p->acs[i]))
			continue;
		acs_describe(&p->acs[i], why, sizeof(why));
		verdict_add(v, R_ACS, "%s", why);
		break;
	}
}

/* ---------------------------------------------------------- text output */

static void text_group(const struct pci_report *p)
{
	const struct group_info *g = &p->g;
	char why[160];

	printf("  IOMMU group %s%s%s%s, default domain %s (%s), %s\n", g->id,
	       *p->unit ? " (" : "", p->unit, *p->unit ? ")" : "",
	       *g->type ? g->type : "?", domain_type_note(g->type),
	       g->viable ? "viable" : "not viable");
	printf("    members: %s\n", g->members);
	if (g->nr_members > 1) {
		printf("    shared by %d devices:", g->nr_members);
		for (int i = 0; i < p->nr_acs; i++) {
			acs_describe(&p->acs[i], why, sizeof(why));
			printf("%s %s", i ? ";" : "", why);
		}
		printf("%s\n", p->nr_acs ? "" :
		       " not explained by ACS (a quirk or DMA alias)");
	}
	for (int i = 0; i < g->nr_resv; i++)
		printf("    reserved (keep mirrors off): %#llx-%#llx %s\n",
		       g->resv[i].start, g->resv[i].end, g->resv[i].type);
	for (int i = 0; i < g->nr_resv; i++) {
		bool seen = false;

		for (int j = 0; j < i; j++)
			seen |= !strcmp(g->resv[j].type, g->resv[i].type);
		if (!seen)
			printf("      %s: %s\n", g->resv[i].type,
			       reserved_note(g->resv[i].type));
	}
}

static void text_uapi(const struct pci_report *p)
{
	const struct dev_uapi *u = &p->uapi;

	printf("  user space: ");
	if (*u->cdev)
		printf("VFIO cdev %s with iommufd /dev/iommu%s", u->cdev,
		       *u->group_node ? "; " : "");
	if (*u->group_node)
		printf("legacy VFIO container /dev/vfio/vfio with group %s",
		       u->group_node);
	if (!*u->cdev && !*u->group_node)
		printf("none");
	if (*u->why)
		printf(" (%s)", u->why);
	printf("\n");
	if (explain && !*u->cdev && !*u->group_node)
		printf("    remedy (user space): bind to vfio-pci (echo "
		       "vfio-pci > /sys/bus/pci/devices/%s/driver_override), "
		       "every group member unbound or on vfio-pci\n",
		       p->bdf);
}

static void text_verdict(const struct pci_report *p)
{
	int first = verdict_first(&p->v);
	char line[512];

	if (first < 0) {
		printf("  verdict: SVA possible\n");
		return;
	}
	printf("  blockers:");
	for (int r = first; r < R_NR; r++)
		if (p->v.mask & (1u << r))
			printf("%s %s", r == first ? "" : ";",
			       reason_line(&p->v, r, line, sizeof(line)));
	printf("\n  verdict: %s\n", reason_line(&p->v, first, line,
					       sizeof(line)));
	for (int r = first; explain && r < R_NR; r++)
		if (p->v.mask & (1u << r))
			printf("  remedy (%s): %s\n", reason_id(r),
			       reason_remedy(r));
}

static void text_device(const struct pci_report *p)
{
	const struct pci_sva_caps *c = &p->caps;

	printf("%s %s:%s class %s driver %s numa %s\n", p->bdf, p->vendor,
	       p->device, p->class, *p->drv ? p->drv : "-",
	       *p->node ? p->node : "-");
	if (c->config_full)
		printf("  PASID %s (width %u%s%s)  ATS %s  PRI %s (%u requests)\n",
		       c->pasid ? "yes" : "no", c->pasid_width,
		       c->pasid_exec ? ", exec" : "",
		       c->pasid_priv ? ", priv" : "",
		       c->ats ? "yes" : "no", c->pri ? "yes" : "no",
		       c->pri_max_requests);
	if (p->virtio)
		printf("  virtio: %s (%s), VIRTIO_F_ACCESS_PLATFORM %s\n",
		       p->virtio->name, virtio_kind(p->virtio->device_id),
		       !p->virtio->features_known ? "unknown" :
		       p->virtio->access_platform ? "yes" :
		       "no: DMA with physical addresses, bypasses any IOMMU");
	if (*p->gid)
		text_group(p);
	text_uapi(p);
	text_verdict(p);
}

/* ---------------------------------------------------------- JSON output */

static void json_group(const struct pci_report *p)
{
	const struct group_info *g = &p->g;
	char buf[160];

	printf("\"iommu_group\": {");
	json_kv_str("id", g->id, false);
	json_kv_str("type", g->type, false);
	json_kv_str("type_note", domain_type_note(g->type), false);
	json_kv_bool("viable", g->viable, false);
	json_kv_str("members", g->members, false);
	printf("\"nr_members\": %d, \"shared_because\": [", g->nr_members);
	for (int i = 0; i < p->nr_acs; i++) {
		acs_describe(&p->acs[i], buf, sizeof(buf));
		printf("%s", i ? ", " : "");
		json_str(buf);
	}
	printf("], \"reserved_regions\": [");
	for (int i = 0; i < g->nr_resv; i++) {
		printf("%s{\"start\": \"%#llx\", \"end\": \"%#llx\", ",
		       i ? ", " : "", g->resv[i].start, g->resv[i].end);
		json_kv_str("type", g->resv[i].type, false);
		json_kv_str("note", reserved_note(g->resv[i].type), true);
		printf("}");
	}
	printf("]}, ");
}

static void json_virtio_item(const struct virtio_info *v)
{
	printf("{");
	json_kv_str("name", v->name, false);
	json_kv_str("device_id", v->device_id, false);
	json_kv_str("kind", virtio_kind(v->device_id), false);
	json_kv_str("pci", v->parent, false);
	json_kv_bool("features_known", v->features_known, false);
	json_kv_bool("access_platform", v->access_platform, true);
	printf("}");
}

static void json_verdict(const struct pci_report *p)
{
	int first = verdict_first(&p->v);
	char line[512];
	bool any = false;

	printf("\"reasons\": [");
	for (int r = 0; r < R_NR; r++) {
		if (!(p->v.mask & (1u << r)))
			continue;
		printf("%s{", any ? ", " : "");
		json_kv_str("id", reason_id(r), false);
		json_kv_str("text", reason_line(&p->v, r, line, sizeof(line)),
			    false);
		json_kv_str("remedy", reason_remedy(r), true);
		printf("}");
		any = true;
	}
	printf("], \"sva_ready\": %s, ", first < 0 ? "true" : "false");
	json_kv_str("verdict", first < 0 ? "SVA possible" :
		    reason_line(&p->v, first, line, sizeof(line)), true);
}

static void json_device(const struct pci_report *p)
{
	const struct pci_sva_caps *c = &p->caps;

	json_sep();
	printf("\n    {");
	json_kv_str("bdf", p->bdf, false);
	json_kv_str("vendor", p->vendor, false);
	json_kv_str("device", p->device, false);
	json_kv_str("class", p->class, false);
	json_kv_str("driver", p->drv, false);
	printf("\"numa_node\": %ld, ", *p->node ? strtol(p->node, NULL, 10) :
	       -1L);
	json_kv_bool("config_full", c->config_full, false);
	printf("\"pasid\": %s, \"pasid_width\": %u, \"ats\": %s, "
	       "\"pri\": %s, \"pri_max_requests\": %u, ",
	       c->pasid ? "true" : "false", c->pasid_width,
	       c->ats ? "true" : "false", c->pri ? "true" : "false",
	       c->pri_max_requests);
	json_kv_str("iommu_unit", p->unit, false);
	printf("\"virtio\": ");
	if (p->virtio)
		json_virtio_item(p->virtio);
	else
		printf("null");
	printf(", ");
	if (*p->gid)
		json_group(p);
	else
		printf("\"iommu_group\": null, ");
	printf("\"userspace\": {");
	json_kv_str("vfio_cdev", p->uapi.cdev, false);
	json_kv_str("vfio_group", p->uapi.group_node, false);
	json_kv_str("why", p->uapi.why, true);
	printf("}, ");
	json_verdict(p);
	printf("}");
}

static int pci_devices(int *nr, int *nr_possible)
{
	static struct pci_report rep;
	struct dirent **names;
	char path[PATH_MAX];
	int n;

	snprintf(path, sizeof(path), "%s/bus/pci/devices", info_paths.sys);
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			pci_read(names[i]->d_name, &rep);
			judge_device(&rep);
			judge_platform(&rep);
			(*nr)++;
			*nr_possible += verdict_first(&rep.v) < 0;
			if (json)
				json_device(&rep);
			else
				text_device(&rep);
		}
		free(names[i]);
	}
	free(names);
	return 0;
}

/* ------------------------------------------------------ machine sections */

static void machine_read(void)
{
	kernel_policy_read(&mach.kernel);
	cmdline_read(&mach.cmdline);
	mach.nr_units = iommu_units(mach.units, MAX_UNITS);
	uapi_nodes_read(&mach.uapi);
	mach.nr_virtio = virtio_scan(mach.virtio, MAX_VIRTIO);
}

static const char *tristate(int v, const char *no, const char *yes)
{
	return v < 0 ? "kernel default" : v ? yes : no;
}

static void text_machine(void)
{
	const struct cmdline_policy *cl = &mach.cmdline;
	const struct kernel_policy *k = &mach.kernel;
	char lacks[96];

	printf("Kernel %s %s: %s\n", k->release, k->machine,
	       k->sva == KSVA_REFUSED ? k->why :
	       "SVA status not in the table of known releases");
	printf("IOMMU units:%s\n", mach.nr_units ? "" :
	       " none registered (/sys/class/iommu is empty)");
	for (int i = 0; i < mach.nr_units; i++) {
		const struct iommu_unit *u = &mach.units[i];

		iommu_unit_lacks(u, lacks, sizeof(lacks));
		printf("  %s: %s", u->name, u->vendor == IOMMU_INTEL ?
		       "Intel VT-d" : u->vendor == IOMMU_AMD ? "AMD-Vi" :
		       "other");
		if (u->have_caps)
			printf(", caps %#llx, %s%s", u->caps,
			       *lacks ? "lacks " : "PASID and page requests",
			       lacks);
		printf("\n");
	}
	printf("  command line: %s\n", *cl->params ? cl->params :
	       "no IOMMU parameters");
	printf("  %s, passthrough %s, scalable mode %s, flush %s\n",
	       *cl->off ? "disabled" : "not disabled",
	       tristate(cl->passthrough, "off", "on"),
	       tristate(cl->sm, "off", "on"),
	       tristate(cl->strict, "lazy", "strict"));
	printf("User-space IOMMU interfaces: iommufd /dev/iommu %s, "
	       "VFIO cdevs /dev/vfio/devices %s, legacy VFIO container "
	       "/dev/vfio/vfio %s\n", mach.uapi.iommufd ? "yes" : "no",
	       mach.uapi.vfio_cdev_dir ? "yes" : "no",
	       mach.uapi.vfio_container ? "yes" : "no");
}

static void text_virtio(void)
{
	int bypass = 0;

	printf("\nvirtio devices:\n");
	for (int i = 0; i < mach.nr_virtio; i++) {
		const struct virtio_info *v = &mach.virtio[i];

		bypass += v->features_known && !v->access_platform;
		printf("  %s (%s) on %s: VIRTIO_F_ACCESS_PLATFORM %s\n",
		       v->name, virtio_kind(v->device_id),
		       *v->parent ? v->parent : "a non-PCI transport",
		       !v->features_known ? "unknown" :
		       v->access_platform ? "yes" :
		       "no: DMA bypasses any IOMMU, never SVA");
	}
	if (!mach.nr_virtio)
		printf("  none\n");
	else if (bypass == mach.nr_virtio)
		printf("  every virtio device here lacks VIRTIO_F_ACCESS_PLATFORM: "
		       "none can share an address space\n");
}

static void json_machine(void)
{
	const struct cmdline_policy *cl = &mach.cmdline;
	char lacks[96];

	printf("\"kernel\": {");
	json_kv_str("release", mach.kernel.release, false);
	json_kv_str("machine", mach.kernel.machine, false);
	json_kv_str("sva", mach.kernel.sva == KSVA_REFUSED ? "refused" :
		    "unknown", false);
	json_kv_str("why", mach.kernel.why ? mach.kernel.why : "", true);
	printf("}, \"cmdline\": {");
	json_kv_str("params", cl->params, false);
	json_kv_str("disabled_by", cl->off, false);
	printf("\"passthrough\": %d, \"strict\": %d, \"scalable_mode\": %d}, ",
	       cl->passthrough, cl->strict, cl->sm);
	printf("\"iommu_units\": [");
	for (int i = 0; i < mach.nr_units; i++) {
		const struct iommu_unit *u = &mach.units[i];

		printf("%s{", i ? ", " : "");
		json_kv_str("name", u->name, false);
		json_kv_str("vendor", u->vendor == IOMMU_INTEL ? "intel" :
			    u->vendor == IOMMU_AMD ? "amd" : "other", false);
		printf("\"caps\": \"%#llx\", ", u->caps);
		json_kv_str("lacks", iommu_unit_lacks(u, lacks, sizeof(lacks)),
			    true);
		printf("}");
	}
	printf("], \"userspace\": {");
	json_kv_bool("iommufd", mach.uapi.iommufd, false);
	json_kv_bool("vfio_cdev_dir", mach.uapi.vfio_cdev_dir, false);
	json_kv_bool("vfio_container", mach.uapi.vfio_container, true);
	printf("}, \"virtio\": [");
	for (int i = 0; i < mach.nr_virtio; i++) {
		printf("%s\n    ", i ? "," : "");
		json_virtio_item(&mach.virtio[i]);
	}
	printf("\n  ], ");
}

static void drm_devices(void)
{
#ifdef HAVE_DRM
	drmDevicePtr devs[64];
	int n = drmGetDevices2(0, devs, 64);

	for (int i = 0; i < n; i++) {
		for (int t = 0; t < DRM_NODE_MAX; t++) {
			if (!(devs[i]->available_nodes & (1 << t)))
				continue;
			if (json) {
				json_sep();
				printf("\n    ");
				json_str(devs[i]->nodes[t]);
			} else {
				printf("  %s\n", devs[i]->nodes[t]);
			}
		}
	}
	if (n > 0)
		drmFreeDevices(devs, n);
	if (n <= 0 && !json)
		printf("  none\n");
#else
	if (!json)
		printf("  (built without libdrm)\n");
#endif
}

/*
 * A vfio device as libsva opens it: the PCI function it drives, its IOMMU
 * group and viability, the container used (the default, or what
 * SVA_VFIO_CONTAINER forces), the containers that open here, and the
 * reserved windows the container enforces.
 */
struct vfio_report {
	char pci[32], container[16], err[320];
	const char *usable[2];
	int nr_usable;
	/* The containers that don't open it, and the library's why. */
	const char *refused[2];
	char refused_why[2][256];
	int nr_refused;
	struct group_info g;
	struct sva_region r[MAX_RESV];
	int nr;
};

static char vfio_msg[256];

static int vfio_msg_keep(enum sva_print_level level, const char *fmt,
			 va_list ap)
{
	if (level <= SVA_WARN)
		vsnprintf(vfio_msg, sizeof(vfio_msg), fmt, ap);
	return 0;
}

/* Open @name with SVA_VFIO_CONTAINER=@want (NULL: as the caller's
 * environment says); 0 or the open's error, its message in vfio_msg. */
static int vfio_try(const char *name, const char *want, struct vfio_report *v)
{
	SVA_OPTS_INIT(sva_dev_caps, caps);
	const char *env = getenv("SVA_VFIO_CONTAINER");
	char keep[32];
	struct sva_dev *dev = NULL;
	int err;

	snprintf(keep, sizeof(keep), "%s", env ? env : "");
	if (want)
		setenv("SVA_VFIO_CONTAINER", want, 1);
	vfio_msg[0] = 0;
	err = sva_dev_open(name, NULL, &dev);
	if (want && env)
		setenv("SVA_VFIO_CONTAINER", keep, 1);
	else if (want)
		unsetenv("SVA_VFIO_CONTAINER");
	if (err)
		return err;
	if (!want && !sva_dev_caps(dev, &caps)) {
		info_copy(v->pci, sizeof(v->pci), caps.pci_addr);
		info_copy(v->container, sizeof(v->container), caps.container);
		v->nr = sva_dev_reserved_regions(dev, v->r, MAX_RESV);
	}
	sva_dev_close(dev);
	return 0;
}

static void vfio_read(const char *name, struct vfio_report *v)
{
	static const char *const names[] = { "type1", "iommufd" };
	sva_print_fn_t old = sva_set_print(vfio_msg_keep);
	char gid[32];
	int err;

	memset(v, 0, sizeof(*v));
	for (size_t i = 0; i < 2; i++) {
		if (!vfio_try(name, names[i], v)) {
			v->usable[v->nr_usable++] = names[i];
			continue;
		}
		v->refused[v->nr_refused] = names[i];
		info_copy(v->refused_why[v->nr_refused],
			  sizeof(v->refused_why[0]), vfio_msg);
		v->refused_why[v->nr_refused][strcspn(
			v->refused_why[v->nr_refused], "\n")] = 0;
		v->nr_refused++;
	}
	err = vfio_try(name, NULL, v);
	if (err)
		snprintf(v->err, sizeof(v->err), "%s: %s", strerror(-err),
			 vfio_msg);
	/* The message ends its line. */
	v->err[strcspn(v->err, "\n")] = 0;
	sva_set_print(old);
	if (*v->pci) {
		info_link_base(gid, sizeof(gid),
			       "%s/bus/pci/devices/%s/iommu_group",
			       info_paths.sys, v->pci);
		if (*gid)
			group_read(gid, &v->g);
	}
}

static const char *region_type(uint32_t t)
{
	return t == SVA_REGION_MSI ? "msi" : t == SVA_REGION_DIRECT ?
	       "direct" : "reserved";
}

static void text_vfio(const struct vfio_report *v)
{
	if (*v->err) {
		printf("    can't be opened: %s\n", v->err);
	} else {
		printf("    PCI %s, IOMMU group %s (%s), container %s\n",
		       v->pci, *v->g.id ? v->g.id : "?",
		       v->g.viable ? "viable" : "not viable", v->container);
		for (int i = 0; i < v->nr && i < MAX_RESV; i++)
			printf("    reserved (the container's): %#llx-%#llx %s\n",
			       (unsigned long long)v->r[i].start,
			       (unsigned long long)v->r[i].end,
			       region_type(v->r[i].type));
	}
	printf("    containers that open here:%s", v->nr_usable ? "" : " none");
	for (int i = 0; i < v->nr_usable; i++)
		printf("%s %s", i ? "," : "", v->usable[i]);
	printf(" (SVA_VFIO_CONTAINER=type1|iommufd picks one)\n");
	for (int i = 0; i < v->nr_refused; i++)
		printf("    %s doesn't: %s\n", v->refused[i],
		       v->refused_why[i]);
}

static void json_vfio(const struct vfio_report *v)
{
	printf("\"vfio\": {");
	json_kv_str("pci", v->pci, false);
	json_kv_str("iommu_group", v->g.id, false);
	json_kv_bool("viable", v->g.viable, false);
	json_kv_str("container", v->container, false);
	printf("\"containers_usable\": [");
	for (int i = 0; i < v->nr_usable; i++) {
		printf("%s", i ? ", " : "");
		json_str(v->usable[i]);
	}
	printf("], \"containers_refused\": [");
	for (int i = 0; i < v->nr_refused; i++) {
		printf("%s{", i ? ", " : "");
		json_kv_str("name", v->refused[i], false);
		json_kv_str("why", v->refused_why[i], true);
		printf("}");
	}
	printf("], \"reserved_regions\": [");
	for (int i = 0; i < v->nr && i < MAX_RESV; i++) {
		printf("%s{\"start\": \"%#llx\", \"end\": \"%#llx\", ",
		       i ? ", " : "", (unsigned long long)v->r[i].start,
		       (unsigned long long)v->r[i].end);
		json_kv_str("type", region_type(v->r[i].type), true);
		printf("}");
	}
	printf("], ");
	json_kv_str("error", v->err, true);
	printf("}");
}

static void backends(void)
{
	static struct vfio_report v;
	struct sva_dev_desc d[32];
	int n = sva_devices(d, 32);

	for (int i = 0; i < n && i < 32; i++) {
		bool vfio = !strcmp(d[i].backend, "vfio");

		if (vfio)
			vfio_read(d[i].name, &v);
		if (json) {
			json_sep();
			printf("\n    {");
			json_kv_str("name", d[i].name, false);
			json_kv_str("backend", d[i].backend, !vfio);
			if (vfio)
				json_vfio(&v);
			printf("}");
		} else {
			printf("  %-8s backend %s\n", d[i].name, d[i].backend);
			if (vfio)
				text_vfio(&v);
		}
	}
}

static int numa_nodes(void)
{
#ifdef HAVE_NUMA
	if (numa_available() >= 0)
		return numa_max_node() + 1;
#endif
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: sva-info [--json] [--explain] [--sysfs ROOT] "
		"[--proc ROOT] [--dev ROOT]\n"
		"                [--kernel-release REL] [--machine ARCH]\n");
}

static int parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "explain", no_argument, NULL, 'e' },
		{ "sysfs", required_argument, NULL, 's' },
		{ "proc", required_argument, NULL, 'p' },
		{ "dev", required_argument, NULL, 'd' },
		{ "kernel-release", required_argument, NULL, 'r' },
		{ "machine", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "jes:p:d:r:m:h", lo, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'e': explain = true; break;
		case 's': info_paths.sys = optarg; break;
		case 'p': info_paths.proc = optarg; break;
		case 'd': info_paths.dev = optarg; break;
		case 'r': info_paths.release = optarg; break;
		case 'm': info_paths.machine = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	return optind < argc ? (usage(stderr), -EINVAL) : 0;
}

static void header(bool real)
{
	if (json) {
		printf("{");
		/* "libsva" is the list of libsva devices, last. */
		json_kv_str("libsva_version", sva_version(), false);
		json_kv_str("sysfs", info_paths.sys, false);
		json_kv_str("proc", info_paths.proc, false);
		json_kv_str("dev", info_paths.dev, false);
		printf("\"numa_nodes\": %d, ", real ? numa_nodes() : 0);
		json_machine();
		printf("\"pci\": [");
		return;
	}
	printf("libsva %s, sysfs %s, NUMA nodes %d\n", sva_version(),
	       info_paths.sys, real ? numa_nodes() : 0);
	text_machine();
	text_virtio();
	printf("\nPCI devices:\n");
}

static void trailer(bool real, int nr, int nr_possible)
{
	if (json)
		printf("\n  ], \"sva_possible\": %d, \"drm\": [", nr_possible);
	else
		printf("\n%d of %d PCI devices: SVA possible\n\nDRM devices:\n",
		       nr_possible, nr);
	first_item = true;
	if (real)
		drm_devices();
	else if (!json)
		printf("  (not read with --sysfs)\n");
	if (json)
		printf("\n  ], \"libsva\": [");
	else
		printf("\nlibsva devices:\n");
	first_item = true;
	backends();
	if (json)
		printf("\n  ]}\n");
}

int main(int argc, char **argv)
{
	int err, nr = 0, nr_possible = 0;
	bool real;

	if (parse_args(argc, argv))
		return 2;
	real = !strcmp(info_paths.sys, "/sys");
	sva_set_print(NULL);
	machine_read();
	header(real);
	first_item = true;
	err = pci_devices(&nr, &nr_possible);
	if (err) {
		fflush(stdout);
		fprintf(stderr, "sva-info: %s/bus/pci/devices: %s\n",
			info_paths.sys, strerror(-err));
		return 1;
	}
	trailer(real, nr, nr_possible);
	return 0;
}
