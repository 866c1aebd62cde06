/*
 * The baselines of the QEMU full-path benchmark (bench/platform.bench.ts): round trips between two host
 * processes over the notification mechanism smcvisor's channel uses (docs/qemu-channel.md), with nothing
 * else in the way (no QEMU, no shim, no router):
 *
 *   socket    one byte each way over a Unix stream socket pair, blocking reads: what the doorbells cost
 *             when neither side polls (two cross-process wake-ups per round trip);
 *   mailbox   the channel's own protocol on a shared mapping: the "shim" posts a sequence number, rings
 *             the socket only when the "hypervisor" is not polling, and polls for the answer; the
 *             "hypervisor" waits on the socket, then answers and keeps polling for `poll_us` after each
 *             request. Its figure is the floor of the protocol itself on this host.
 *
 * usage: pingpong socket|mailbox <round trips> [poll_us]; prints "<mode> <ns per round trip>".
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

struct mailbox {
	_Alignas(64) volatile uint32_t req_seq;
	_Alignas(64) volatile uint32_t rsp_seq;
	_Alignas(64) volatile uint32_t polling;
};

static void socket_side(int fd, long n)
{
	char c;
	for (long i = 0; i < n; i++)
		if (read(fd, &c, 1) != 1 || write(fd, &c, 1) != 1)
			_exit(1);
	_exit(0);
}

/* The hypervisor's side: sleep on the doorbell, then answer and poll for poll_ns after each request. */
static void host_side(int fd, struct mailbox *m, long n, uint64_t poll_ns)
{
	uint32_t seen = 0;
	char buf[64];
	while ((long)seen < n) {
		if (read(fd, buf, sizeof buf) <= 0)
			_exit(1);
		__atomic_store_n(&m->polling, 1, __ATOMIC_SEQ_CST);
		uint64_t last = now_ns();
		for (;;) {
			uint32_t seq = __atomic_load_n(&m->req_seq, __ATOMIC_SEQ_CST);
			if (seq != seen) {
				seen = seq;
				__atomic_store_n(&m->rsp_seq, seq, __ATOMIC_SEQ_CST);
				last = now_ns();
				continue;
			}
			if (now_ns() - last < poll_ns)
				continue;
			__atomic_store_n(&m->polling, 0, __ATOMIC_SEQ_CST);
			if (__atomic_load_n(&m->req_seq, __ATOMIC_SEQ_CST) == seen)
				break;
			__atomic_store_n(&m->polling, 1, __ATOMIC_SEQ_CST);
		}
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: pingpong socket|mailbox <round trips> [poll_us]\n");
		return 2;
	}
	int mailbox = !strcmp(argv[1], "mailbox");
	long n = atol(argv[2]);
	uint64_t poll_ns = (uint64_t)(argc > 3 ? atol(argv[3]) : 50) * 1000;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 1;
	struct mailbox *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 1;
	memset(m, 0, sizeof *m);
	pid_t child = fork();
	if (child == 0) {
		close(sv[0]);
		if (mailbox)
			host_side(sv[1], m, n, poll_ns);
		socket_side(sv[1], n);
	}
	close(sv[1]);
	char c = 'x';
	uint64_t t0 = now_ns();
	for (long i = 1; i <= n; i++) {
		if (!mailbox) {
			if (write(sv[0], &c, 1) != 1 || read(sv[0], &c, 1) != 1)
				return 1;
			continue;
		}
		__atomic_store_n(&m->req_seq, (uint32_t)i, __ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&m->polling, __ATOMIC_SEQ_CST) && write(sv[0], &c, 1) != 1)
			return 1;
		while (__atomic_load_n(&m->rsp_seq, __ATOMIC_SEQ_CST) != (uint32_t)i)
			;
	}
	uint64_t dt = now_ns() - t0;
	close(sv[0]);
	int status;
	waitpid(child, &status, 0);
	printf("%s %.0f\n", argv[1], (double)dt / (double)n);
	return 0;
}
