/**
 * Non-contiguous buffers (optee_msg.h OPTEE_MSG_ATTR_NONCONTIG): buf_ptr is the address of a 4 KiB list
 * page with the buffer's offset in its low 12 bits; each list page holds 511 page addresses and the
 * address of the next list page. The guest's list is read (copied) page by page, every entry is checked
 * and translated, and a new list of platform addresses is built in the hypervisor's own pages, which is
 * what OP-TEE reads. A list that loops, or names memory the VM does not own, is refused.
 */
import { PAGE_SIZE, PAGELIST_ENTRIES, TEEC } from "../../smccc/optee/abi.js";
import type { MediatorHost } from "../mediator.js";

export type PageListResult =
  | { readonly ok: true; readonly bufPtr: bigint; readonly listPages: bigint[]; readonly pages: number }
  | { readonly ok: false; readonly result: number; readonly why: string };

export function translatePageList(host: MediatorHost, vm: string, bufPtr: bigint, size: bigint, budget: number): PageListResult {
  const offset = bufPtr & 0xfffn;
  if (size === 0n) return { ok: false, result: TEEC.ERROR_BAD_PARAMETERS, why: "an empty non-contiguous buffer" };
  const count = Number((offset + size + BigInt(PAGE_SIZE - 1)) / BigInt(PAGE_SIZE));
  if (count > budget) return { ok: false, result: TEEC.ERROR_OUT_OF_MEMORY, why: `${count} pages exceed the VM's limit (${Math.max(budget, 0)} left)` };
  const mem = host.memory(vm);
  if (!mem) return { ok: false, result: TEEC.ERROR_BAD_PARAMETERS, why: "no memory" };
  const listPages: bigint[] = [];
  const fail = (why: string, result: number = TEEC.ERROR_BAD_PARAMETERS): PageListResult => {
    for (const p of listPages) host.heap.free(p);
    return { ok: false, result, why };
  };
  const seen = new Set<bigint>();
  let guestList = bufPtr & ~0xfffn;
  let done = 0;
  let previous: Uint8Array | null = null;
  let previousPa = 0n;
  while (done < count) {
    // List pages are whole pages (Linux allocates them page-aligned); an offset would let a list alias
    // itself at a different address and dodge the loop check.
    if ((guestList & 0xfffn) !== 0n) return fail(`list page 0x${guestList.toString(16)} is not page-aligned`);
    if (seen.has(guestList)) return fail(`the list loops back to 0x${guestList.toString(16)}`);
    seen.add(guestList);
    const raw = mem.read(guestList, PAGE_SIZE);
    if (raw === null) return fail(`list page 0x${guestList.toString(16)} is outside the VM's RAM`);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const page = host.heap.alloc(vm);
    // The hypervisor's shortage, not the guest's mistake: the guest may retry later.
    if (page === null) return fail("the hypervisor is out of pages for page lists", TEEC.ERROR_OUT_OF_MEMORY);
    listPages.push(page);
    const out = new Uint8Array(PAGE_SIZE);
    const odv = new DataView(out.buffer);
    for (let i = 0; i < PAGELIST_ENTRIES && done < count; i++, done++) {
      const ipa = dv.getBigUint64(8 * i, true);
      const pa = (ipa & 0xfffn) === 0n ? host.ipaToPa(vm, ipa, BigInt(PAGE_SIZE)) : null;
      if (pa === null) return fail(`page 0x${ipa.toString(16)} is not a page of the VM's RAM`);
      odv.setBigUint64(8 * i, pa, true);
    }
    if (previous !== null) {
      new DataView(previous.buffer).setBigUint64(8 * PAGELIST_ENTRIES, page, true);
      host.heap.write(previousPa, previous);
    }
    previous = out;
    previousPa = page;
    guestList = dv.getBigUint64(8 * PAGELIST_ENTRIES, true);
  }
  host.heap.write(previousPa, previous!);
  return { ok: true, bufPtr: listPages[0]! | offset, listPages, pages: count };
}
