/*
 * smcvisor's OP-TEE client for the Linux guest, built against Debian's optee-client-dev and libteec1
 * (GlobalPlatform TEE Client API). It talks to the TAs of smcvisor's modelled OP-TEE through Linux's
 * optee driver, which talks to smcvisor's OP-TEE mediator. One parseable "SMCV-TEEC ..." line per result.
 *
 *   teec-client hello <value>                    invoke hello world's INC_VALUE once
 *   teec-client decrypt <bytes> <nonce-a> <nonce-b>
 *                                                decrypt <bytes> zero bytes with this VM's content key
 *   teec-client threads <n> <seconds>            n threads, each its own session, invoking hello world
 *                                                with its own values; every result is checked
 *   teec-client bench <seconds>                  invoke round trips per second (a small value invoke that
 *                                                stays in the secure world: the RNG TA's GET_RNG_INFO;
 *                                                hello world's, which makes one RPC; 64 KiB memref;
 *                                                share-invoke-release of 64 KiB and 1 MiB; open+close)
 *                                                against a no-op TEE ioctl (TEE_IOC_VERSION)
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <tee_client_api.h>

static const TEEC_UUID HELLO = {0x8aaaf200, 0x2450, 0x11e4, {0xab, 0xe2, 0x00, 0x02, 0xa5, 0xd5, 0xc5, 0x1b}};
static const TEEC_UUID DECRYPT = {0xd7a2b9c4, 0x5e61, 0x4f08, {0xa3, 0xc7, 0x1b, 0x9e, 0x2d, 0x4f, 0x6a, 0x58}};
static const TEEC_UUID RNG = {0xab7a617c, 0xb8e7, 0x4d8f, {0x83, 0x01, 0xd0, 0x9b, 0x61, 0x03, 0x6b, 0x64}};

/* Linux include/uapi/linux/tee.h: TEE_IOC_VERSION = _IOR(0xa4, 0, struct tee_ioctl_version_data). */
struct tee_ioctl_version_data {
	uint32_t impl_id, impl_caps, gen_caps;
};
#define TEE_IOC_VERSION _IOR(0xa4, 0, struct tee_ioctl_version_data)

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int open_session(TEEC_Context *ctx, TEEC_Session *s, const TEEC_UUID *uuid, const char *what)
{
	uint32_t origin;
	TEEC_Result r = TEEC_OpenSession(ctx, s, uuid, TEEC_LOGIN_PUBLIC, NULL, NULL, &origin);
	if (r != TEEC_SUCCESS) {
		printf("SMCV-TEEC error open %s 0x%x origin %u\n", what, r, origin);
		return -1;
	}
	return 0;
}

static TEEC_Result hello(TEEC_Session *s, uint32_t in, uint32_t *out)
{
	TEEC_Operation op;
	uint32_t origin;
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_VALUE_INOUT, TEEC_NONE, TEEC_NONE, TEEC_NONE);
	op.params[0].value.a = in;
	TEEC_Result r = TEEC_InvokeCommand(s, 0 /* TA_HELLO_WORLD_CMD_INC_VALUE */, &op, &origin);
	*out = op.params[0].value.a;
	return r;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static TEEC_Result decrypt(TEEC_Session *s, TEEC_SharedMemory *in, TEEC_SharedMemory *out, size_t n, uint32_t a, uint32_t b)
{
	TEEC_Operation op;
	uint32_t origin;
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_PARTIAL_INPUT, TEEC_MEMREF_PARTIAL_OUTPUT, TEEC_VALUE_INPUT, TEEC_NONE);
	op.params[0].memref.parent = in;
	op.params[0].memref.size = n;
	op.params[1].memref.parent = out;
	op.params[1].memref.size = n;
	op.params[2].value.a = a;
	op.params[2].value.b = b;
	return TEEC_InvokeCommand(s, 0 /* TA_DECRYPT_CMD_DECRYPT */, &op, &origin);
}

static int alloc(TEEC_Context *ctx, TEEC_SharedMemory *m, size_t n, uint32_t flags)
{
	memset(m, 0, sizeof(*m));
	m->size = n;
	m->flags = flags;
	TEEC_Result r = TEEC_AllocateSharedMemory(ctx, m);
	if (r != TEEC_SUCCESS) {
		printf("SMCV-TEEC error alloc 0x%x\n", r);
		return -1;
	}
	memset(m->buffer, 0, n);
	return 0;
}

/*
 * Share, invoke, release: each round registers fresh shared memory of `size` bytes for input and output
 * (over FF-A: two MEM_SHAREs, in fragments above 4 KiB of descriptor), decrypts through it, and releases
 * both (UNREGISTER and MEM_RECLAIM), as a client that does not keep its buffers does.
 */
static void share_invoke(TEEC_Context *ctx, TEEC_Session *d, size_t size, const char *label, double seconds)
{
	unsigned long n = 0, errors = 0;
	double t0 = now();
	while (now() - t0 < seconds) {
		TEEC_SharedMemory a, b;
		if (alloc(ctx, &a, size, TEEC_MEM_INPUT) != 0)
			return;
		if (alloc(ctx, &b, size, TEEC_MEM_OUTPUT) != 0) {
			TEEC_ReleaseSharedMemory(&a);
			return;
		}
		if (decrypt(d, &a, &b, size, 1, 2) != TEEC_SUCCESS)
			errors++;
		TEEC_ReleaseSharedMemory(&a);
		TEEC_ReleaseSharedMemory(&b);
		n++;
	}
	if (errors)
		printf("SMCV-TEEC error %s: %lu of %lu invokes failed\n", label, errors, n);
	printf("SMCV-TEEC bench %s %.1f\n", label, n / (now() - t0));
}

struct worker {
	pthread_t thread;
	int index;
	double seconds;
	unsigned long calls, errors;
	TEEC_Context *ctx;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	TEEC_Session s;
	if (open_session(w->ctx, &s, &HELLO, "hello") != 0) {
		w->errors++;
		return NULL;
	}
	double end = now() + w->seconds;
	uint32_t v = (uint32_t)w->index << 24;
	while (now() < end) {
		uint32_t out = 0;
		TEEC_Result r = hello(&s, v, &out);
		if (r != TEEC_SUCCESS || out != v + 1) {
			if (w->errors++ < 3)
				printf("SMCV-TEEC error thread %d: 0x%x, sent %u got %u\n", w->index, r, v, out);
		}
		w->calls++;
		v++;
	}
	TEEC_CloseSession(&s);
	return NULL;
}

static void bench(TEEC_Context *ctx, double seconds)
{
	TEEC_Session s;
	TEEC_SharedMemory in, out;
	if (open_session(ctx, &s, &HELLO, "hello") != 0)
		return;
	int fd = open("/dev/tee0", O_RDWR);
	struct tee_ioctl_version_data vers;
	unsigned long n = 0;
	double t0 = now();
	while (now() - t0 < seconds) {
		ioctl(fd, TEE_IOC_VERSION, &vers);
		n++;
	}
	printf("SMCV-TEEC bench ioctl-version %.1f\n", n / (now() - t0));
	close(fd);
	n = 0;
	t0 = now();
	while (now() - t0 < seconds) {
		uint32_t o;
		hello(&s, (uint32_t)n, &o);
		n++;
	}
	printf("SMCV-TEEC bench invoke-value-rpc %.1f\n", n / (now() - t0));
	TEEC_Session rng;
	if (open_session(ctx, &rng, &RNG, "rng") == 0) {
		TEEC_Operation op;
		uint32_t origin;
		n = 0;
		t0 = now();
		while (now() - t0 < seconds) {
			memset(&op, 0, sizeof(op));
			op.paramTypes = TEEC_PARAM_TYPES(TEEC_VALUE_OUTPUT, TEEC_NONE, TEEC_NONE, TEEC_NONE);
			TEEC_InvokeCommand(&rng, 1 /* TA_CMD_GET_RNG_INFO */, &op, &origin);
			n++;
		}
		printf("SMCV-TEEC bench invoke-value %.1f\n", n / (now() - t0));
		TEEC_CloseSession(&rng);
	}
	TEEC_Session d;
	if (open_session(ctx, &d, &DECRYPT, "decrypt") == 0 && alloc(ctx, &in, 65536, TEEC_MEM_INPUT) == 0 && alloc(ctx, &out, 65536, TEEC_MEM_OUTPUT) == 0) {
		n = 0;
		t0 = now();
		while (now() - t0 < seconds) {
			decrypt(&d, &in, &out, 65536, 1, 2);
			n++;
		}
		double dt = now() - t0;
		printf("SMCV-TEEC bench invoke-memref64k %.1f\n", n / dt);
		printf("SMCV-TEEC bench decrypt-MBps %.2f\n", n * 65536.0 / dt / 1e6);
		share_invoke(ctx, &d, 65536, "share-invoke-64k", seconds);
		share_invoke(ctx, &d, 1 << 20, "share-invoke-1m", seconds);
		TEEC_ReleaseSharedMemory(&in);
		TEEC_ReleaseSharedMemory(&out);
		TEEC_CloseSession(&d);
	}
	n = 0;
	t0 = now();
	while (now() - t0 < seconds) {
		TEEC_Session x;
		if (open_session(ctx, &x, &HELLO, "hello") != 0)
			break;
		TEEC_CloseSession(&x);
		n++;
	}
	printf("SMCV-TEEC bench open-close %.1f\n", n / (now() - t0));
	TEEC_CloseSession(&s);
}

int main(int argc, char **argv)
{
	TEEC_Context ctx;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		fprintf(stderr, "usage: teec-client hello|decrypt|threads|bench ...\n");
		return 2;
	}
	TEEC_Result r = TEEC_InitializeContext(NULL, &ctx);
	if (r != TEEC_SUCCESS) {
		printf("SMCV-TEEC error context 0x%x\n", r);
		return 1;
	}
	int rc = 0;
	if (!strcmp(argv[1], "hello") && argc == 3) {
		TEEC_Session s;
		uint32_t in = (uint32_t)strtoul(argv[2], NULL, 0), out = 0;
		if (open_session(&ctx, &s, &HELLO, "hello") != 0)
			return 1;
		r = hello(&s, in, &out);
		printf("SMCV-TEEC hello 0x%x %u %u\n", r, in, out);
		TEEC_CloseSession(&s);
	} else if (!strcmp(argv[1], "decrypt") && argc == 5) {
		TEEC_Session s;
		TEEC_SharedMemory in, out;
		size_t n = strtoul(argv[2], NULL, 0);
		if (open_session(&ctx, &s, &DECRYPT, "decrypt") != 0 || alloc(&ctx, &in, n, TEEC_MEM_INPUT) != 0 || alloc(&ctx, &out, n, TEEC_MEM_OUTPUT) != 0)
			return 1;
		r = decrypt(&s, &in, &out, n, (uint32_t)strtoul(argv[3], NULL, 0), (uint32_t)strtoul(argv[4], NULL, 0));
		const uint8_t *p = out.buffer;
		printf("SMCV-TEEC decrypt 0x%x %zu %016llx %02x%02x%02x%02x%02x%02x%02x%02x\n", r, n, (unsigned long long)fnv1a(p, n), p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
		TEEC_ReleaseSharedMemory(&in);
		TEEC_ReleaseSharedMemory(&out);
		TEEC_CloseSession(&s);
	} else if (!strcmp(argv[1], "threads") && argc == 4) {
		int n = atoi(argv[2]);
		struct worker w[16];
		if (n < 1 || n > 16)
			return 2;
		for (int i = 0; i < n; i++) {
			memset(&w[i], 0, sizeof(w[i]));
			w[i].index = i;
			w[i].seconds = atof(argv[3]);
			w[i].ctx = &ctx;
			pthread_create(&w[i].thread, NULL, work, &w[i]);
		}
		unsigned long calls = 0, errors = 0;
		for (int i = 0; i < n; i++) {
			pthread_join(w[i].thread, NULL);
			calls += w[i].calls;
			errors += w[i].errors;
		}
		printf("SMCV-TEEC threads %d calls %lu errors %lu\n", n, calls, errors);
	} else if (!strcmp(argv[1], "bench") && argc == 3) {
		bench(&ctx, atof(argv[2]));
	} else {
		fprintf(stderr, "usage: teec-client hello|decrypt|threads|bench ...\n");
		rc = 2;
	}
	TEEC_FinalizeContext(&ctx);
	return rc;
}
