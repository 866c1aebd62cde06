/**
 * A VM's RX/TX buffer pair (DEN0077 v1.2 §7.2, §13.5-13.8): in the VM's own RAM, read and written by the
 * mediator only (FfaMediator.writeRx); never forwarded to the SPMC, which sees only the hypervisor's pair.
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import { FFA_PAGE_SIZE, FFA_RET } from "../../smccc/ffa/abi.js";
import type { FfaMediator } from "./mediator.js";
import { ffaSuccess, type FfaVm } from "./vm.js";

/**
 * FFA_RXTX_MAP (§13.7): TX and RX of 1-N 4 KiB pages, each aligned, all the VM's own RAM, not overlapping
 * each other; DENIED when a pair is already mapped (Xen ffa_handle_rxtx_map).
 */
export function rxtxMap(m: FfaMediator, st: FfaVm, call: SmcCall, res: SmcResult): void {
  const tx = call.x(1), rx = call.x(2), w3 = call.w(3), pages = w3 & 0x3f;
  if (st.rxtx) return m.refuse(st, res, FFA_RET.DENIED, "FFA_RXTX_MAP with buffers already mapped");
  if ((w3 & ~0x3f) !== 0 || pages === 0 || pages > m.limits.rxtxPages) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `FFA_RXTX_MAP of ${w3} pages`);
  const size = BigInt(pages * FFA_PAGE_SIZE), page = BigInt(FFA_PAGE_SIZE);
  if (tx % page !== 0n || rx % page !== 0n) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "FFA_RXTX_MAP of unaligned buffers");
  if (tx < rx + size && rx < tx + size) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "FFA_RXTX_MAP of overlapping buffers");
  if (m.host.ipaToPa(st.name, tx, size) === null || m.host.ipaToPa(st.name, rx, size) === null) {
    return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "FFA_RXTX_MAP of buffers outside the VM's RAM");
  }
  // Not pages the VM has shared or lent: the mediator writes RX and a borrower may hold them.
  const first = [Number(tx / page), Number(rx / page)];
  for (const f of first) for (let p = f; p < f + pages; p++) if (st.pagesInUse.has(p)) return m.refuse(st, res, FFA_RET.DENIED, "FFA_RXTX_MAP of memory the VM has shared or lent");
  st.rxtx = { tx, rx, pages };
  st.rxFull = false;
  ffaSuccess(res);
}

/**
 * FFA_RXTX_UNMAP (§13.8): the ID field (w1 [31:16]) is the hypervisor's, naming the VM whose pair it
 * unmaps; from a VM it is 0, or its own ID: Linux 6.1 passes its own (driver.c ffa_rxtx_unmap(vm_id), a
 * habit later removed upstream), and a module reload must find the pair gone. Any other ID, or [15:0]
 * set: INVALID_PARAMETERS.
 */
export function rxtxUnmap(m: FfaMediator, st: FfaVm, call: SmcCall, res: SmcResult): void {
  const w1 = call.w(1);
  if (w1 !== 0 && w1 !== ((st.id << 16) >>> 0)) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `FFA_RXTX_UNMAP with w1 0x${w1.toString(16)}`);
  if (!st.rxtx) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "FFA_RXTX_UNMAP without buffers");
  m.memory.abortFragmented(st);
  st.rxtx = null;
  st.rxFull = false;
  ffaSuccess(res);
}

/** FFA_RX_RELEASE (§13.5): the VM gives its RX buffer back; DENIED unless it owns it. w1 (a VM ID) is the hypervisor's. */
export function rxRelease(m: FfaMediator, st: FfaVm, call: SmcCall, res: SmcResult): void {
  if (call.w(1) !== 0) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "FFA_RX_RELEASE with a VM ID");
  if (!st.rxtx || !st.rxFull) return m.refuse(st, res, FFA_RET.DENIED, "FFA_RX_RELEASE of an RX buffer the VM does not own");
  st.rxFull = false;
  // The message that filled it is consumed: its notification goes too.
  st.rxBufferFull = false;
  ffaSuccess(res);
}

