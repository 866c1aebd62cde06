/*
 * The doorbells between the shim and the hypervisor: one virtio console per vCPU (QEMU's
 * virtio-serial-device with a virtconsole port, behind the virtio-mmio transport of slot n), whose
 * chardev is a Unix socket the hypervisor listens on. The shim rings by sending one byte (the hypervisor
 * then looks at the vCPU's mailbox); the hypervisor rings back by sending one byte, which raises the
 * transport's interrupt and wakes the vCPU from WFI. Only EL2 reaches the transport: no stage-2 table maps
 * it, and its virtqueues live in the shim's memory.
 *
 * Legacy virtio-mmio (QEMU's default, force-legacy=on), Virtio 1.0 §4.2.4; console port 0 without
 * VIRTIO_CONSOLE_F_MULTIPORT uses queue 0 (receiveq) and queue 1 (transmitq), §5.3.2.
 */
#include "shim.h"

#define VIRTIO_MAGIC 0x74726976u /* "virt" */
#define VIRTIO_ID_CONSOLE 3

#define MMIO_MAGIC 0x000
#define MMIO_VERSION 0x004
#define MMIO_DEVICE_ID 0x008
#define MMIO_GUEST_FEATURES 0x020
#define MMIO_GUEST_FEATURES_SEL 0x024
#define MMIO_GUEST_PAGE_SIZE 0x028
#define MMIO_QUEUE_SEL 0x030
#define MMIO_QUEUE_NUM_MAX 0x034
#define MMIO_QUEUE_NUM 0x038
#define MMIO_QUEUE_ALIGN 0x03c
#define MMIO_QUEUE_PFN 0x040
#define MMIO_QUEUE_NOTIFY 0x050
#define MMIO_INTERRUPT_STATUS 0x060
#define MMIO_INTERRUPT_ACK 0x064
#define MMIO_STATUS 0x070

#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4

#define RX 0
#define TX 1
#define VRING_DESC_F_WRITE 2
#define VRING_AVAIL_F_NO_INTERRUPT 1
/* The used ring starts at this alignment after the available ring (legacy QueueAlign). */
#define QUEUE_ALIGN 64

struct vring_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

/* A queue's page: descriptors, then the available ring, then (aligned) the used ring. */
#define AVAIL_OFF (16 * DOORBELL_QSIZE)
#define USED_OFF ((AVAIL_OFF + 6 + 2 * DOORBELL_QSIZE + QUEUE_ALIGN - 1) & ~(QUEUE_ALIGN - 1))
_Static_assert(USED_OFF + 6 + 8 * DOORBELL_QSIZE <= 4096, "a queue fits its page");

static inline volatile u16 *avail(u8 *page) { return (volatile u16 *)(page + AVAIL_OFF); }
static inline volatile u16 *used(u8 *page) { return (volatile u16 *)(page + USED_OFF); }
static inline volatile u32 *used_elem(u8 *page, u32 i) { return (volatile u32 *)(page + USED_OFF + 4 + 8 * i); }

static void rx_post(struct doorbell *d, u16 desc)
{
	volatile u16 *a = avail(d->rx);
	a[2 + d->rx_avail % DOORBELL_QSIZE] = desc;
	d->rx_avail++;
}

/* Sets up the vCPU's virtio console; 0 on success. Called once per boot of the CPU. */
int doorbell_init(struct doorbell *d, u64 base)
{
	d->base = base;
	d->ready = 0;
	if (MMIO32(base + MMIO_MAGIC) != VIRTIO_MAGIC || MMIO32(base + MMIO_VERSION) != 1 || MMIO32(base + MMIO_DEVICE_ID) != VIRTIO_ID_CONSOLE)
		return -1;
	MMIO32(base + MMIO_STATUS) = 0;
	MMIO32(base + MMIO_STATUS) = STATUS_ACKNOWLEDGE;
	MMIO32(base + MMIO_STATUS) = STATUS_ACKNOWLEDGE | STATUS_DRIVER;
	/* No features: a single console port (port 0) on queues 0 and 1. */
	MMIO32(base + MMIO_GUEST_FEATURES_SEL) = 0;
	MMIO32(base + MMIO_GUEST_FEATURES) = 0;
	MMIO32(base + MMIO_GUEST_PAGE_SIZE) = 4096;
	for (u32 q = 0; q < 2; q++) {
		u8 *page = q == RX ? d->rx : d->tx;
		zero(page, 4096);
		MMIO32(base + MMIO_QUEUE_SEL) = q;
		if (MMIO32(base + MMIO_QUEUE_NUM_MAX) < DOORBELL_QSIZE)
			return -1;
		MMIO32(base + MMIO_QUEUE_NUM) = DOORBELL_QSIZE;
		MMIO32(base + MMIO_QUEUE_ALIGN) = QUEUE_ALIGN;
		MMIO32(base + MMIO_QUEUE_PFN) = (u32)((u64)page >> 12);
	}
	d->rx_avail = d->rx_used = d->tx_avail = 0;
	volatile struct vring_desc *rx = (volatile struct vring_desc *)d->rx;
	for (u16 i = 0; i < DOORBELL_QSIZE; i++) {
		rx[i].addr = (u64)d->rx_buf[i];
		rx[i].len = sizeof(d->rx_buf[i]);
		rx[i].flags = VRING_DESC_F_WRITE;
		rx_post(d, i);
	}
	/* The transmit queue never interrupts: a sent byte needs no completion. */
	avail(d->tx)[0] = VRING_AVAIL_F_NO_INTERRUPT;
	volatile struct vring_desc *tx = (volatile struct vring_desc *)d->tx;
	for (u16 i = 0; i < DOORBELL_QSIZE; i++) {
		tx[i].addr = (u64)&d->tx_buf;
		tx[i].len = 1;
		tx[i].flags = 0;
	}
	d->tx_buf = 'R';
	dmb();
	avail(d->rx)[1] = d->rx_avail;
	MMIO32(base + MMIO_STATUS) = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK;
	MMIO32(base + MMIO_QUEUE_NOTIFY) = RX;
	d->ready = 1;
	return 0;
}

/* Rings the hypervisor: one byte on the console. A full queue already holds a ring it has not read. */
void doorbell_ring(struct doorbell *d)
{
	u16 in_flight = (u16)(d->tx_avail - used(d->tx)[1]);
	if (in_flight < DOORBELL_QSIZE) {
		avail(d->tx)[2 + d->tx_avail % DOORBELL_QSIZE] = d->tx_avail % DOORBELL_QSIZE;
		d->tx_avail++;
		dmb();
		avail(d->tx)[1] = d->tx_avail;
		dmb();
	}
	MMIO32(d->base + MMIO_QUEUE_NOTIFY) = TX;
}

/* Takes whatever the hypervisor sent (the bytes mean nothing) and lowers the transport's interrupt. */
void doorbell_drain(struct doorbell *d)
{
	u32 isr = MMIO32(d->base + MMIO_INTERRUPT_STATUS);
	if (isr)
		MMIO32(d->base + MMIO_INTERRUPT_ACK) = isr;
	dmb();
	u16 done = used(d->rx)[1];
	if (done == d->rx_used)
		return;
	while (d->rx_used != done) {
		u32 id = *used_elem(d->rx, d->rx_used % DOORBELL_QSIZE);
		d->rx_used++;
		rx_post(d, (u16)(id % DOORBELL_QSIZE));
	}
	dmb();
	avail(d->rx)[1] = d->rx_avail;
	MMIO32(d->base + MMIO_QUEUE_NOTIFY) = RX;
}
