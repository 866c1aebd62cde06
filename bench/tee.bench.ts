/**
 * TEE benchmarks (issue 6): OP-TEE invoke round trips per second through the whole path (router → OP-TEE
 * mediator → OP-TEE model → back), in-process and from Linux userspace under QEMU, each against a no-op
 * baseline in the same place; decrypt throughput for 64 KiB buffers against the same ChaCha20 done
 * directly in Node (the limit).
 */
import { runScenario } from "../src/cli/run.js";
import { chacha20 } from "../src/firmware/optee/chacha20.js";
import { CONTENT_DECRYPT_UUID, TA_DECRYPT_CMD_DECRYPT } from "../src/firmware/optee/tas/content-decrypt.js";
import { HELLO_WORLD_UUID, TA_HELLO_WORLD_CMD_INC_VALUE } from "../src/firmware/optee/tas/hello-world.js";
import { RNG_TA_UUID, TA_CMD_GET_RNG_INFO } from "../src/firmware/optee/tas/rng.js";
import { ScriptedMachine } from "../src/machine/scripted/machine.js";
import { parseScenario } from "../src/machine/qemu/scenario.js";
import { OpteeGuest, param, run } from "../test/support/optee-guest.js";

const KEY = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const CONFIG = `
platform:
  tee: { os: optee, threads: 8, maxGuests: 2 }
vms:
  a: { tee: { mediator: optee, contentKey: "${KEY}" }, memory: { base: 0x40000000, size: 16MiB } }
`;

export interface TeeResult {
  readonly inProcess: Record<string, number>;
  readonly linux: Record<string, number> | null;
  readonly ratios: Record<string, number>;
}

/** Calls per second of `f` over about `ms` milliseconds (after a short warm-up). */
function rate(f: () => void, ms: number): number {
  for (let i = 0; i < 200; i++) f();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    for (let i = 0; i < 50; i++) f();
    n += 50;
  }
  return (n * 1000) / (performance.now() - t0);
}

function inProcess(ms: number): Record<string, number> {
  const m = ScriptedMachine.fromText(CONFIG);
  const vcpu = m.vm("a").vcpu(0);
  const g = OpteeGuest.forVm(m.vm("a"));
  run(g.probe());
  const hello = run(g.openSession(HELLO_WORLD_UUID)).session;
  const rng = run(g.openSession(RNG_TA_UUID)).session;
  const dec = run(g.openSession(CONTENT_DECRYPT_UUID)).session;
  const input = g.allocShm(65536), output = g.allocShm(65536);
  run(g.registerShm(input));
  run(g.registerShm(output));
  const key = Uint8Array.from(Buffer.from(KEY, "hex"));
  const plain = new Uint8Array(65536), out = new Uint8Array(65536), nonce = new Uint8Array(12);
  const r: Record<string, number> = {};
  r["no-op fast call (OPTEE_SMC_CALLS_REVISION through the mediator)"] = rate(() => void vcpu.smc(0xbf00_ff03), ms);
  r["invoke, small value (RNG TA GET_RNG_INFO)"] = rate(() => void run(g.invoke(rng, TA_CMD_GET_RNG_INFO, [param.valueOut()])), ms);
  r["invoke, small value with one RPC (hello world)"] = rate(() => void run(g.invoke(hello, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])), ms);
  const memref = rate(() => void run(g.invoke(dec, TA_DECRYPT_CMD_DECRYPT, [param.rmem("in", input), param.rmem("out", output), param.valueIn(0, 0)])), ms);
  r["invoke, 64 KiB registered memref (decrypt)"] = memref;
  r["open + close session"] = rate(() => void run(g.closeSession(run(g.openSession(HELLO_WORLD_UUID)).session)), ms);
  r["decrypt MB/s through the whole path"] = (memref * 65536) / 1e6;
  r["decrypt MB/s in Node directly (limit)"] = (rate(() => chacha20(key, nonce, 0, plain, out), ms) * 65536) / 1e6;
  return r;
}

async function linux(seconds: number): Promise<Record<string, number>> {
  const s = parseScenario("tee-bench", {
    platform: { tee: { os: "optee", threads: 8, maxGuests: 2 } },
    vms: { a: { vcpus: 2, memory: { size: "512MiB" }, conduit: "smc", tee: { mediator: "optee", contentKey: KEY } } },
    guests: { a: { kernel: "debian", run: `teec-client bench ${seconds}\nteec-client threads 4 ${seconds}` } },
  }, () => ({}));
  if (!s.ok) throw new Error(JSON.stringify(s.errors));
  const report = await runScenario(s.scenario);
  const lines = report.vms[0]!.console;
  const value = (what: string) => {
    const l = lines.find((x) => x.includes(`SMCV-TEEC bench ${what} `));
    if (!l) throw new Error(`the guest did not report ${what}: ${lines.slice(-5).join(" / ")}`);
    return Number(l.trim().split(" ").at(-1));
  };
  const threads = /calls (\d+)/.exec(lines.find((l) => l.includes("SMCV-TEEC threads 4")) ?? "");
  return {
    "no-op TEE ioctl (TEE_IOC_VERSION)": value("ioctl-version"),
    "invoke, small value (RNG TA GET_RNG_INFO)": value("invoke-value"),
    "invoke, small value with one RPC (hello world)": value("invoke-value-rpc"),
    "invoke, 64 KiB memref (decrypt)": value("invoke-memref64k"),
    "open + close session": value("open-close"),
    "invoke, 4 threads in all": threads ? Number(threads[1]) / seconds : NaN,
    "decrypt MB/s through the whole path": value("decrypt-MBps"),
  };
}

export async function teeBench(opts: { quick: boolean; qemu: boolean }): Promise<TeeResult> {
  const ip = inProcess(opts.quick ? 300 : 1500);
  const lx = opts.qemu ? await linux(opts.quick ? 1 : 3) : null;
  const ratios: Record<string, number> = {
    "in-process: small invoke / no-op fast call": ip["invoke, small value (RNG TA GET_RNG_INFO)"]! / ip["no-op fast call (OPTEE_SMC_CALLS_REVISION through the mediator)"]!,
    "in-process: decrypt throughput / Node directly": ip["decrypt MB/s through the whole path"]! / ip["decrypt MB/s in Node directly (limit)"]!,
  };
  if (lx) {
    ratios["Linux: small invoke / no-op ioctl (aim: 0.25 or better)"] = lx["invoke, small value (RNG TA GET_RNG_INFO)"]! / lx["no-op TEE ioctl (TEE_IOC_VERSION)"]!;
    ratios["Linux: decrypt throughput / Node directly"] = lx["decrypt MB/s through the whole path"]! / ip["decrypt MB/s in Node directly (limit)"]!;
  }
  return { inProcess: ip, linux: lx, ratios };
}
