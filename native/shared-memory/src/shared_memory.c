/*
 * mmap and munmap for Node, as external ArrayBuffers: smcvisor's QEMU backend maps each VM's shared RAM
 * file so that the hypervisor reads guest memory and the shim's mailboxes without a system call per access
 * (docs/qemu-channel.md). Plain Node-API (node_api.h, version 8), so the binary works on any Node that
 * offers it.
 *
 * Lifetime: map() wraps a small record {addr, len, unmapped} to the ArrayBuffer. unmap() munmaps at once and
 * detaches the buffer, so later accesses see a zero-length buffer instead of unmapped memory. A mapping that
 * is never unmapped is unmapped by the finalizer when the buffer is collected.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct mapping {
	void *addr;
	size_t len;
	int unmapped;
};

#define MAX_MAPPING ((uint64_t)1 << 32) /* Node 20's limit for one ArrayBuffer */

#define TRY(env, call)                                                                                     \
	do {                                                                                               \
		if ((call) != napi_ok) {                                                                   \
			napi_throw_error(env, NULL, #call " failed");                                      \
			return NULL;                                                                       \
		}                                                                                          \
	} while (0)

static napi_value throw_errno(napi_env env, const char *what, int err)
{
	char msg[256];
	snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
	napi_throw_error(env, err == EINVAL ? "EINVAL" : err == ENOMEM ? "ENOMEM" : "EMMAP", msg);
	return NULL;
}

/* The buffer was collected (or the environment is going away). */
static void finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)data;
	struct mapping *m = hint;
	if (!m->unmapped)
		munmap(m->addr, m->len);
	free(m);
}

/* map(fd, length, offset, writable) -> ArrayBuffer */
static napi_value map(napi_env env, napi_callback_info info)
{
	size_t argc = 4;
	napi_value argv[4];
	TRY(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	int32_t fd;
	int64_t len, off;
	bool writable;
	if (argc != 4 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &len) != napi_ok ||
	    napi_get_value_int64(env, argv[2], &off) != napi_ok || napi_get_value_bool(env, argv[3], &writable) != napi_ok) {
		napi_throw_type_error(env, NULL, "map(fd: number, length: number, offset: number, writable: boolean)");
		return NULL;
	}
	if (len <= 0 || off < 0)
		return throw_errno(env, "map", EINVAL);
	if ((uint64_t)len > MAX_MAPPING) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "one mapping is at most 4 GiB");
		return NULL;
	}
	void *p = mmap(NULL, (size_t)len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, (off_t)off);
	if (p == MAP_FAILED)
		return throw_errno(env, "mmap", errno);
	struct mapping *m = malloc(sizeof *m);
	if (!m) {
		munmap(p, (size_t)len);
		return throw_errno(env, "map", ENOMEM);
	}
	m->addr = p;
	m->len = (size_t)len;
	m->unmapped = 0;
	napi_value buffer;
	/* On failure Node has already called finalize (munmap and free). */
	if (napi_create_external_arraybuffer(env, p, (size_t)len, finalize, m, &buffer) != napi_ok) {
		napi_throw_error(env, NULL, "napi_create_external_arraybuffer failed");
		return NULL;
	}
	TRY(env, napi_wrap(env, buffer, m, NULL, NULL, NULL));
	return buffer;
}

/* unmap(buffer) -> boolean */
static napi_value unmap(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], result;
	bool detached = false;
	struct mapping *m;
	TRY(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc != 1 || napi_is_detached_arraybuffer(env, argv[0], &detached) != napi_ok) {
		napi_throw_type_error(env, NULL, "unmap(buffer: ArrayBuffer)");
		return NULL;
	}
	if (detached) {
		TRY(env, napi_get_boolean(env, false, &result));
		return result;
	}
	if (napi_remove_wrap(env, argv[0], (void **)&m) != napi_ok) {
		napi_throw_type_error(env, NULL, "unmap: not a buffer from map()");
		return NULL;
	}
	if (munmap(m->addr, m->len) != 0)
		return throw_errno(env, "munmap", errno);
	m->unmapped = 1; /* the finalizer only frees the record now */
	/* After this the record may be freed at any time: do not touch it. */
	TRY(env, napi_detach_arraybuffer(env, argv[0]));
	TRY(env, napi_get_boolean(env, true, &result));
	return result;
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_property_descriptor d[] = {
		{ "map", NULL, map, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "unmap", NULL, unmap, NULL, NULL, NULL, napi_enumerable, NULL },
	};
	TRY(env, napi_define_properties(env, exports, 2, d));
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
