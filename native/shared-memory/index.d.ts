/**
 * Maps `length` bytes of the open file `fd` from `offset` (page-aligned) with MAP_SHARED, read-write or
 * read-only. The ArrayBuffer is the mapping: every process that maps the file sees the same bytes.
 * At most 4 GiB per mapping (Node's limit for one ArrayBuffer).
 */
export function map(fd: number, length: number, offset: number, writable: boolean): ArrayBuffer;
/**
 * Unmaps now and detaches the ArrayBuffer, so every view of it has length 0 (reads give undefined, writes
 * are dropped, Atomics throw): no access after this reaches the unmapped pages. false if it was already unmapped.
 */
export function unmap(buffer: ArrayBuffer): boolean;
