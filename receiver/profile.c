// SPDX-License-Identifier: GPL-2.0-only
/* The adaptation profiles (profile.h): one table, one lookup. */
#include "receiver/profile.h"

#include <string.h>

#define VMWARE_UNITS "open-vm-tools.service", "vmtoolsd.service", "vgauth.service", \
	"run-vmblock\\x2dfuse.mount"
#define HYPERV_UNITS "hv-kvp-daemon.service", "hv-vss-daemon.service", \
	"hv-fcopy-daemon.service", "hypervkvpd.service", "hypervvssd.service", \
	"hypervfcopyd.service"

/* virtio_pci carries every virtio device; virtio_scsi is listed for kvm too because
 * OpenStack images with hw_scsi_model=virtio-scsi name their disks /dev/sdX through it. */
static const char *const kvm_drivers[] = { "virtio_pci", "virtio_blk", "virtio_scsi",
	"virtio_net", NULL };
static const char *const aws_drivers[] = { "nvme", "nvme_core", "ena", NULL };
static const char *const azure_drivers[] = { "hv_vmbus", "hv_storvsc", "hv_netvsc",
	"hv_utils", NULL };
static const char *const gcp_drivers[] = { "virtio_pci", "virtio_scsi", "nvme", "nvme_core",
	"gve", "virtio_net", NULL };

static const char *const not_vmware_hyperv[] = { VMWARE_UNITS, HYPERV_UNITS, NULL };
/* Azure is Hyper-V: its KVP and VSS daemons are wanted there. */
static const char *const not_vmware[] = { VMWARE_UNITS, NULL };

static const struct prof profiles[] = {
	{ "kvm", "KVM: OpenStack and most private clouds (virtio-blk, virtio-net)",
	  kvm_drivers, "/dev/vdX (virtio-blk) or /dev/sdX (virtio-scsi)", "virtio-blk-pci",
	  not_vmware_hyperv },
	{ "aws", "AWS EC2 Nitro (NVMe storage, ENA network)",
	  aws_drivers, "/dev/nvmeXn1", "nvme", not_vmware_hyperv },
	{ "azure", "Microsoft Azure (Hyper-V storvsc, netvsc, vmbus)",
	  azure_drivers, "/dev/sdX", NULL, not_vmware },
	{ "gcp", "Google Compute Engine (virtio-scsi or NVMe storage, gVNIC or virtio-net)",
	  gcp_drivers, "/dev/sdX (virtio-scsi) or /dev/nvmeXn1", "scsi-hd", not_vmware_hyperv },
};

const struct prof *prof_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
		if (strcmp(profiles[i].name, name) == 0)
			return &profiles[i];
	return NULL;
}

const struct prof *prof_all(size_t *ret_n)
{
	*ret_n = sizeof(profiles) / sizeof(profiles[0]);
	return profiles;
}

const char *prof_names(void)
{
	return "kvm, aws, azure, gcp";
}
