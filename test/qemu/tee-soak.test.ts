// Four libteec client threads in each of two Linux VMs invoke the hello-world TA concurrently for a minute
// (issue 6): every call returns its own correct result (the client checks each), the secure-world model
// never fails, and at the end OP-TEE and the mediator hold nothing for either VM.
import { describe, expect, it } from "vitest";
import { runScenario } from "../../src/cli/run.js";
import { parseScenario } from "../../src/machine/qemu/scenario.js";

const SECONDS = 60;
const vm = (key: string) => ({ vcpus: 2, memory: { size: "512MiB" }, conduit: "smc", tee: { mediator: "optee", contentKey: key } });
const guest = { kernel: "debian", run: `teec-client threads 4 ${SECONDS}`, expect: { console: [`/SMCV-TEEC threads 4 calls [1-9][0-9]* errors 0/`], notConsole: ["SMCV-TEEC error"] } };

describe("OP-TEE under load from two Linux VMs", () => {
  it(`four client threads per VM for ${SECONDS} s: every result correct, nothing fails, nothing left behind`, async () => {
    const s = parseScenario("soak", {
      platform: { tee: { os: "optee", threads: 8, maxGuests: 2 } },
      vms: { a: vm("11".repeat(32)), b: vm("22".repeat(32)) },
      guests: { a: guest, b: guest },
      timeoutSeconds: SECONDS + 120,
    }, () => ({}));
    if (!s.ok) throw new Error(JSON.stringify(s.errors));
    let hv: import("../../src/hypervisor/hypervisor.js").Hypervisor | null = null;
    // What OP-TEE holds for each VM the moment it powers off (before the machine destroys the domain).
    const atExit = new Map<string, object>();
    const report = await runScenario(s.scenario, {
      onStart: (m) => {
        hv = m.hypervisor;
        for (const [name, q] of m.vms) void q.exited.then(() => atExit.set(name, m.hypervisor.optee!.counters(m.hypervisor.domain(name).config.id)));
      },
    });
    expect(report.vms.flatMap((v) => v.failures.map((f) => `${v.name}: ${f}`))).toEqual([]);
    for (const v of report.vms) {
      const calls = Number(/calls (\d+)/.exec(v.console.find((l) => l.includes("SMCV-TEEC threads"))!)![1]);
      // A real round trip through Linux, the mediator and the model: well over one per second per thread.
      expect(calls, v.name).toBeGreaterThan(4 * SECONDS);
      expect(v.errors, v.name).toBe(0);
      console.log(`${v.name}: ${calls} invokes from 4 threads in ${SECONDS} s`);
    }
    // The clients closed their sessions before power-off: OP-TEE holds no thread for either VM and one
    // session, optee-rng's (Linux's driver keeps it open while it is bound) ...
    for (const name of ["a", "b"]) expect(atExit.get(name), name).toMatchObject({ sessions: 1, threads: 0 });
    // ... and once the machine destroyed the domains, nothing at all.
    for (const id of [1, 2]) expect(hv!.optee!.counters(id)).toEqual({ sessions: 0, threads: 0, registrations: 0, pages: 0, rpcBuffers: 0 });
  }, (SECONDS + 180) * 1000);
});
