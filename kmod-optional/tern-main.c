// SPDX-License-Identifier: GPL-2.0-only
/*
 * tern.ko: keeps a dirty-block bitmap for each disk range the agent registers, marked by
 * a probe on the block_rq_complete tracepoint (the event the eBPF tracker uses), and
 * hands it out through the ioctls of /dev/tern (uapi/tern.h).
 */
#include <linux/bitmap.h>
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/random.h>
#include <linux/rculist.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/tracepoint.h>
#include <linux/uaccess.h>

#include "compat.h"
#include "uapi/tern.h"

/* The harvest copies the kernel bitmap to the user's __u64 words as it is: the words of
 * two 32-bit longs land in the right order only on a little-endian machine. */
#if BITS_PER_LONG != 64 && defined(__BIG_ENDIAN)
#error "tern.ko needs 64-bit longs or a little-endian machine"
#endif

/**
 * struct tern_tracker - one registered disk range
 * @node: on tern_trackers, read under RCU by the probe
 * @id: the agent's disk id
 * @major: major of the whole disk
 * @first_minor: first minor of the whole disk
 * @start: first sector of the range
 * @nr_sectors: sectors in the range
 * @shift: log2 of sectors per block
 * @nblocks: bits in each bitmap
 * @lock: guards @active and every write to the active bitmap, so a flip under it
 *	leaves no probe still writing the bitmap being harvested
 * @active: which of @map the probe marks
 * @map: the two bitmaps
 * @pending: harvested, not yet acknowledged (under tern_mutex)
 * @requests: data-changing requests seen (under @lock)
 * @sectors: their sectors (under @lock)
 * @harvests: harvests so far (under tern_mutex)
 * @acked_epoch: last acknowledged epoch, U64_MAX for none (under tern_mutex)
 * @gen: the generation, new at registration and at every ack (under tern_mutex)
 */
struct tern_tracker {
	struct list_head node;
	char id[TERN_ID_LEN];
	u32 major, first_minor;
	u64 start, nr_sectors;
	unsigned int shift;
	u64 nblocks;
	spinlock_t lock;
	unsigned int active;
	unsigned long *map[2];
	unsigned long *pending;
	u64 requests, sectors;
	u64 harvests, acked_epoch;
	u64 gen;
};

/* Writers (ioctls) serialise on the mutex; the probe walks the list under RCU. */
static LIST_HEAD(tern_trackers);
static DEFINE_MUTEX(tern_mutex);
static unsigned int tern_ntrackers;
static struct tracepoint *tern_tp_complete;

/* The ops that change what a later read returns; a failed request is marked too, since
 * part of it may have reached the media. */
static bool tern_op_changes_data(unsigned int op)
{
	switch (op) {
	case REQ_OP_WRITE:
	case REQ_OP_DISCARD:
	case REQ_OP_SECURE_ERASE:
	case REQ_OP_WRITE_ZEROES:
	case REQ_OP_ZONE_APPEND:
#ifdef HAVE_REQ_OP_WRITE_SAME
	case REQ_OP_WRITE_SAME:
#endif
		return true;
	default:
		return false;
	}
}

static void tern_mark(struct tern_tracker *t, u64 sector, u64 nr)
{
	u64 end = sector + nr, first, last;
	unsigned long flags;

	if (!nr || end <= t->start || sector >= t->start + t->nr_sectors)
		return;
	sector = max(sector, t->start) - t->start;
	end = min(end, t->start + t->nr_sectors) - t->start;
	first = sector >> t->shift;
	last = (end - 1) >> t->shift;
	spin_lock_irqsave(&t->lock, flags);
	bitmap_set(t->map[t->active], (unsigned int)first, (unsigned int)(last - first + 1));
	t->requests++;
	t->sectors += end - sector;
	spin_unlock_irqrestore(&t->lock, flags);
}

/*
 * Runs where the request completes (often interrupt context): the request's sectors and
 * the completed byte count say what changed. A request completed in parts fires once
 * per part, each time from its current position.
 */
static void tern_probe_rq_complete(void *data, struct request *rq, blk_status_t error,
				   unsigned int nr_bytes)
{
	struct gendisk *disk = TERN_RQ_DISK(rq);
	struct tern_tracker *t;

	if (!disk || !tern_op_changes_data(req_op(rq)))
		return;
	rcu_read_lock();
	list_for_each_entry_rcu(t, &tern_trackers, node) {
		if (t->major == disk->major && t->first_minor == disk->first_minor)
			tern_mark(t, blk_rq_pos(rq), nr_bytes >> SECTOR_SHIFT);
	}
	rcu_read_unlock();
}

static struct tern_tracker *tern_find(const char *id)
{
	struct tern_tracker *t;

	lockdep_assert_held(&tern_mutex);
	list_for_each_entry(t, &tern_trackers, node)
		if (!strncmp(t->id, id, TERN_ID_LEN))
			return t;
	return NULL;
}

static struct tern_tracker *tern_free(struct tern_tracker *t)
{
	if (!t)
		return NULL;
	kvfree(t->map[0]);
	kvfree(t->map[1]);
	kvfree(t->pending);
	kfree(t);
	return NULL;
}

/* Takes t off the list and frees it once no probe can still see it. */
static void tern_remove(struct tern_tracker *t)
{
	lockdep_assert_held(&tern_mutex);
	list_del_rcu(&t->node);
	tern_ntrackers--;
	synchronize_rcu();
	tern_free(t);
}

static int tern_check_id(const char *id)
{
	size_t n = strnlen(id, TERN_ID_LEN);

	return n == 0 || n == TERN_ID_LEN ? -EINVAL : 0;
}

/* A new generation: random and never 0, which the agent reads as "none". */
static u64 tern_new_gen(void)
{
	u64 g;

	do
		g = get_random_u64();
	while (!g);
	return g;
}

static bool tern_same(const struct tern_tracker *t, const struct tern_register *reg)
{
	return t->major == reg->major && t->first_minor == reg->first_minor &&
	       t->start == reg->start_sector && t->nr_sectors == reg->nr_sectors &&
	       (SECTOR_SIZE << t->shift) == reg->block_size;
}

static int tern_ioc_register(void __user *arg)
{
	struct tern_register reg;
	struct tern_tracker *t = NULL, *old;
	size_t len;
	int r;

	if (copy_from_user(&reg, arg, sizeof(reg)))
		return -EFAULT;
	if (reg.version != TERN_UAPI_VERSION)
		return -EPROTO;
	if (tern_check_id(reg.id) || reg.reserved || !reg.nr_sectors ||
	    reg.block_size < SECTOR_SIZE || reg.block_size > (1u << 20) ||
	    !is_power_of_2(reg.block_size) || reg.flags & ~TERN_REG_REPLACE)
		return -EINVAL;

	mutex_lock(&tern_mutex);
	old = tern_find(reg.id);
	if (old && tern_same(old, &reg)) {
		reg.flags = TERN_REG_RESUMED;
		reg.nblocks = old->nblocks;
		reg.acked_epoch = old->acked_epoch;
		reg.gen = old->gen;
		r = 0;
		goto out;
	}
	r = -EEXIST;
	if (old && !(reg.flags & TERN_REG_REPLACE))
		goto out;
	r = -ENOMEM;
	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t)
		goto out;
	memcpy(t->id, reg.id, TERN_ID_LEN);
	t->major = reg.major;
	t->first_minor = reg.first_minor;
	t->start = reg.start_sector;
	t->nr_sectors = reg.nr_sectors;
	t->shift = ilog2(reg.block_size) - SECTOR_SHIFT;
	t->nblocks = DIV_ROUND_UP_ULL(reg.nr_sectors, 1ull << t->shift);
	t->acked_epoch = U64_MAX;
	t->gen = tern_new_gen();
	spin_lock_init(&t->lock);
	/* bitmap_set() counts bits in an unsigned int. */
	r = -EFBIG;
	if (t->nblocks > UINT_MAX)
		goto out;
	r = -ENOMEM;
	/* Sized in the u64 words the harvest copies out, not in longs: with 32-bit longs
	 * BITS_TO_LONGS can be one long short of the last u64, and the copy would read
	 * past the allocation. The bitmap API only ever touches its longs, all inside. */
	len = DIV_ROUND_UP_ULL(t->nblocks, 64) * sizeof(u64);
	t->map[0] = kvzalloc(len, GFP_KERNEL);
	t->map[1] = kvzalloc(len, GFP_KERNEL);
	t->pending = kvzalloc(len, GFP_KERNEL);
	if (!t->map[0] || !t->map[1] || !t->pending)
		goto out;
	if (old)
		tern_remove(old);
	list_add_tail_rcu(&t->node, &tern_trackers);
	tern_ntrackers++;
	reg.flags = 0;
	reg.nblocks = t->nblocks;
	reg.acked_epoch = t->acked_epoch;
	reg.gen = t->gen;
	t = NULL;
	r = 0;
out:
	mutex_unlock(&tern_mutex);
	tern_free(t);
	if (r == 0 && copy_to_user(arg, &reg, sizeof(reg)))
		r = -EFAULT;
	return r;
}

static int tern_ioc_harvest(void __user *arg)
{
	struct tern_harvest h;
	struct tern_tracker *t;
	unsigned int idle;
	size_t words;
	int r;

	if (copy_from_user(&h, arg, sizeof(h)))
		return -EFAULT;
	if (tern_check_id(h.id))
		return -EINVAL;
	mutex_lock(&tern_mutex);
	r = -ENOENT;
	t = tern_find(h.id);
	if (!t)
		goto out;
	words = DIV_ROUND_UP_ULL(t->nblocks, 64);
	r = -ENOSPC;
	if (h.buf_len < words * sizeof(u64))
		goto out;
	/* After the flip every probe marks the other bitmap: the idle one is complete. */
	spin_lock_irq(&t->lock);
	idle = t->active;
	t->active = !idle;
	spin_unlock_irq(&t->lock);
	bitmap_or(t->pending, t->pending, t->map[idle], (unsigned int)t->nblocks);
	bitmap_zero(t->map[idle], (unsigned int)t->nblocks);
	t->harvests++;
	h.ndirty = bitmap_weight(t->pending, (unsigned int)t->nblocks);
	/* The bitmap's tail past nblocks is zero, so whole words can be copied. */
	r = -EFAULT;
	if (copy_to_user(u64_to_user_ptr(h.buf), t->pending, words * sizeof(u64)))
		goto out;
	r = 0;
out:
	mutex_unlock(&tern_mutex);
	if (r == 0 && copy_to_user(arg, &h, sizeof(h)))
		r = -EFAULT;
	return r;
}

static int tern_ioc_ack(void __user *arg)
{
	struct tern_tracker *t;
	struct tern_ack a;
	int r = -ENOENT;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	if (tern_check_id(a.id))
		return -EINVAL;
	mutex_lock(&tern_mutex);
	t = tern_find(a.id);
	if (t) {
		/* Under the mutex no register or harvest sees the new generation with the
		 * old pending set, nor the old one with the set forgotten. */
		t->gen = tern_new_gen();
		bitmap_zero(t->pending, (unsigned int)t->nblocks);
		t->acked_epoch = a.epoch;
		a.gen = t->gen;
		r = 0;
	}
	mutex_unlock(&tern_mutex);
	if (r == 0 && copy_to_user(arg, &a, sizeof(a)))
		r = -EFAULT;
	return r;
}

static int tern_ioc_stats(void __user *arg)
{
	struct tern_tracker *t;
	struct tern_stats s;
	int r = -ENOENT;

	if (copy_from_user(&s, arg, sizeof(s)))
		return -EFAULT;
	if (tern_check_id(s.id))
		return -EINVAL;
	mutex_lock(&tern_mutex);
	t = tern_find(s.id);
	if (t) {
		s.nblocks = t->nblocks;
		s.ndirty_pending = bitmap_weight(t->pending, (unsigned int)t->nblocks);
		spin_lock_irq(&t->lock);
		s.requests = t->requests;
		s.sectors = t->sectors;
		spin_unlock_irq(&t->lock);
		s.harvests = t->harvests;
		s.acked_epoch = t->acked_epoch;
		s.gen = t->gen;
		r = 0;
	}
	mutex_unlock(&tern_mutex);
	if (r == 0 && copy_to_user(arg, &s, sizeof(s)))
		r = -EFAULT;
	return r;
}

static int tern_ioc_unregister(void __user *arg)
{
	struct tern_unregister u;
	struct tern_tracker *t;
	int r = -ENOENT;

	if (copy_from_user(&u, arg, sizeof(u)))
		return -EFAULT;
	if (tern_check_id(u.id))
		return -EINVAL;
	mutex_lock(&tern_mutex);
	t = tern_find(u.id);
	if (t) {
		tern_remove(t);
		r = 0;
	}
	mutex_unlock(&tern_mutex);
	return r;
}

static long tern_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;
	struct tern_version v;

	/* The bitmaps reveal where every tracked disk is written. */
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	switch (cmd) {
	case TERN_IOC_VERSION:
		mutex_lock(&tern_mutex);
		v.version = TERN_UAPI_VERSION;
		v.ntrackers = tern_ntrackers;
		mutex_unlock(&tern_mutex);
		return copy_to_user(uarg, &v, sizeof(v)) ? -EFAULT : 0;
	case TERN_IOC_REGISTER:
		return tern_ioc_register(uarg);
	case TERN_IOC_HARVEST:
		return tern_ioc_harvest(uarg);
	case TERN_IOC_ACK:
		return tern_ioc_ack(uarg);
	case TERN_IOC_STATS:
		return tern_ioc_stats(uarg);
	case TERN_IOC_UNREGISTER:
		return tern_ioc_unregister(uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations tern_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = tern_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice tern_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = TERN_DEV_NAME,
	.fops = &tern_fops,
	.mode = 0600,
};

/* block_rq_complete is not exported to modules: find it by name, as tracers do. */
static void tern_find_tp(struct tracepoint *tp, void *priv)
{
	if (!strcmp(tp->name, "block_rq_complete"))
		*(struct tracepoint **)priv = tp;
}

static int __init tern_init(void)
{
	int r;

	for_each_kernel_tracepoint(tern_find_tp, &tern_tp_complete);
	if (!tern_tp_complete) {
		pr_err("tern: no block_rq_complete tracepoint in this kernel\n");
		return -ENOENT;
	}
	r = tracepoint_probe_register(tern_tp_complete, tern_probe_rq_complete, NULL);
	if (r) {
		pr_err("tern: cannot attach to block_rq_complete: %d\n", r);
		return r;
	}
	r = misc_register(&tern_misc);
	if (r) {
		tracepoint_probe_unregister(tern_tp_complete, tern_probe_rq_complete, NULL);
		tracepoint_synchronize_unregister();
		return r;
	}
	pr_info("tern: change tracker ready, uapi %u\n", TERN_UAPI_VERSION);
	return 0;
}

static void __exit tern_exit(void)
{
	struct tern_tracker *t, *n;

	/* No ioctl runs now: an open /dev/tern holds a reference on the module. */
	misc_deregister(&tern_misc);
	tracepoint_probe_unregister(tern_tp_complete, tern_probe_rq_complete, NULL);
	/* No probe runs past this point, so the trackers can go without RCU. */
	tracepoint_synchronize_unregister();
	list_for_each_entry_safe(t, n, &tern_trackers, node) {
		list_del(&t->node);
		tern_free(t);
	}
	pr_info("tern: unloaded\n");
}

module_init(tern_init);
module_exit(tern_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("tern change tracker: dirty-block bitmaps of registered disks");
MODULE_VERSION("0.1.0");
