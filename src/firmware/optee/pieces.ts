/**
 * Where the bytes of a normal-world buffer are: a buffer of 4 KiB pages (a REGISTER_SHM page list, or the
 * ranges of an FF-A memory region) as runs of physically consecutive pages, and a byte range of it as
 * pieces of physical memory. Pure arithmetic, shared by both ABIs of the OS.
 */
import { PAGE_SIZE } from "../../smccc/optee/abi.js";
import type { NormalMemory } from "./os.js";

/** Pages of a buffer that are physically consecutive: bytes [start, start + length) of it are at pa. */
export interface Run {
  readonly start: number;
  readonly pa: bigint;
  length: number;
}

/** A piece of a buffer in physical memory. */
export interface Piece {
  readonly pa: bigint;
  readonly length: number;
}

/** A list of 4 KiB pages as runs of physically consecutive pages. */
export function pageRuns(pages: readonly bigint[]): Run[] {
  const runs: Run[] = [];
  let last: Run | null = null;
  for (let i = 0; i < pages.length; i++) {
    const pa = pages[i]!;
    if (last !== null && last.pa + BigInt(last.length) === pa) last.length += PAGE_SIZE;
    else runs.push((last = { start: i * PAGE_SIZE, pa, length: PAGE_SIZE }));
  }
  return runs;
}

/** Ranges of `pages` 4 KiB pages each, in order, as runs (consecutive ranges join). */
export function rangeRuns(ranges: readonly { readonly pa: bigint; readonly pages: number }[]): Run[] {
  const runs: Run[] = [];
  let last: Run | null = null;
  let start = 0;
  for (const r of ranges) {
    const length = r.pages * PAGE_SIZE;
    if (last !== null && last.pa + BigInt(last.length) === r.pa) last.length += length;
    else runs.push((last = { start, pa: r.pa, length }));
    start += length;
  }
  return runs;
}

/** The physical pieces of bytes [offset, offset + size) of a buffer laid out in `runs`; null past its end. */
export function piecesOf(runs: readonly Run[], offset: number, size: number): Piece[] | null {
  const out: Piece[] = [];
  let at = offset, left = size;
  for (let r = 0; r < runs.length && left > 0; r++) {
    const run = runs[r]!;
    if (at >= run.start + run.length) continue;
    const inRun = at - run.start;
    const length = Math.min(left, run.length - inRun);
    out.push({ pa: run.pa + BigInt(inRun), length });
    at += length;
    left -= length;
  }
  return left === 0 ? out : null;
}

/**
 * Copies bytes [skip, length) of the buffer the pieces cover into `dest` from `skip` on; false unless the
 * guest's memory holds all of it. Each piece is viewed in place where the port can, so the only copy is
 * the one into `dest`.
 */
export function readPieces(m: NormalMemory, guest: number, ps: readonly Piece[], length: number, skip: number, dest: Uint8Array): boolean {
  let off = 0;
  for (const p of ps) {
    if (off >= length) break;
    const take = Math.min(p.length, length - off);
    if (off + take > skip) {
      const from = Math.max(skip - off, 0);
      const pa = p.pa + BigInt(from);
      const n = take - from;
      const src = (m.view ? m.view(pa, n, guest) : null) ?? m.read(pa, n, guest);
      if (src === null || src.length !== n) return false;
      dest.set(src, off + from);
    }
    off += take;
  }
  return off >= length;
}

/**
 * Writes `data` across the pieces in order (in place where the port can view them, unless `viewed` is
 * false); false if any piece fails.
 */
export function writePieces(m: NormalMemory, guest: number, ps: readonly Piece[], data: Uint8Array, viewed = true): boolean {
  let off = 0;
  for (const p of ps) {
    if (off >= data.length) break;
    const take = Math.min(p.length, data.length - off);
    const chunk = data.subarray(off, off + take);
    const dest = viewed && m.view ? m.view(p.pa, take, guest) : null;
    if (dest !== null && dest.length === take) dest.set(chunk);
    else if (!m.write(p.pa, chunk, guest)) return false;
    off += take;
  }
  return off >= data.length;
}
