// The control API without QEMU: an in-process machine behind the same LiveTarget and VmActions ports,
// requests through fastify's inject (and one real socket for the slow stream client).
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { FastifyInstance } from "fastify";
import { ScriptedMachine } from "../machine/scripted/machine.js";
import { LIVE_LIMITS, LiveView, type LiveTarget } from "./live.js";
import { buildUiServer, UI_LIMITS, type UiServerOptions } from "./server.js";
import type { VmActions } from "./control.js";

const POLICY = `
vms:
  a:
    vcpus: 2
    grants:
      - { name: a-no-uid, id: 0x8600FF01, action: deny }
  b: {}
`;
const HOST = "127.0.0.1:8123";

function setup(extra: Partial<UiServerOptions> = {}) {
  const m = ScriptedMachine.fromText(POLICY);
  const destroyed = new Set<string>();
  const target: LiveTarget = {
    hypervisor: m.hypervisor,
    vmNames: () => m.config.vms.map((v) => v.name),
    vmState: (name) => ({ state: destroyed.has(name) ? "destroyed" : "running" }),
  };
  const actions: VmActions = {
    reset: (name) => (destroyed.has(name) ? { ok: false, error: "destroyed" } : (void m.hypervisor.resetDomain(name), { ok: true, detail: "reset" })),
    powerOff: (name) => ({ ok: false, error: `${name}: the in-process machine has no power` }),
    destroy: (name) => (m.hypervisor.destroyDomain(name) ? (destroyed.add(name), { ok: true, detail: "destroyed" }) : { ok: false, error: "no such VM" }),
  };
  const view = new LiveView(target);
  const opts: UiServerOptions = { view, actions, config: m.config, policyText: POLICY, hosts: new Set([HOST]), ...extra };
  return { m, view, opts, app: buildUiServer(opts) };
}

let open: FastifyInstance[] = [];
afterEach(async () => {
  for (const a of open) await a.close();
  open = [];
});
async function start(extra: Partial<UiServerOptions> = {}) {
  const s = setup(extra);
  const app = await s.app;
  open.push(app);
  return { ...s, app };
}
const get = (app: FastifyInstance, url: string, headers: Record<string, string> = {}) => app.inject({ method: "GET", url, headers: { host: HOST, ...headers } });
const post = (app: FastifyInstance, url: string, body: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method: "POST", url, payload: JSON.stringify(body), headers: { host: HOST, "content-type": "application/json", ...headers } });

describe("the control API", () => {
  it("lists the VMs with their state, vCPU power states, counters and denials with the rule that denied them", async () => {
    const { app, m, view } = await start();
    m.vm("a").vcpu(0).hvc(0x8000_0000); // SMCCC_VERSION
    m.vm("a").vcpu(0).hvc(0x8600_ff01); // denied by a-no-uid
    m.vm("b").vcpu(0).hvc(0x8400_0000); // PSCI_VERSION
    view.poll();
    const vms = (await get(app, "/api/vms")).json().vms;
    expect(vms.map((v: { name: string }) => v.name)).toEqual(["a", "b"]);
    expect(vms[0]).toMatchObject({ name: "a", state: "running", vcpus: ["on", "off"], counters: { calls: 2, denied: 1, errors: 0 }, inFlight: { vcpus: 0 } });
    expect(vms[1].counters.calls).toBe(1);
    const denials = (await get(app, "/api/denials")).json().denials;
    expect(denials).toHaveLength(1);
    expect(denials[0]).toMatchObject({ vm: "a", fid: "0x8600FF01", action: "deny", rule: "a-no-uid" });
    const calls = (await get(app, "/api/calls?vm=b")).json().calls;
    expect(calls).toEqual([{ vm: "b", owner: expect.stringMatching(/Standard/), function: "PSCI_VERSION", outcome: "return", calls: 1 }]);
  });

  it("explains a call a VM made, by its trace sequence number, and any call by VM and ID", async () => {
    const { app, m, view } = await start();
    m.vm("a").vcpu(0).hvc(0x8600_ff01);
    view.poll();
    const seq = (await get(app, "/api/trace?vm=a")).json().events[0].seq;
    const r = (await get(app, `/api/explain?seq=${seq}`)).json();
    expect(r.explanation.decision).toMatchObject({ action: "deny", rule: "a-no-uid" });
    const b = (await get(app, "/api/explain?vm=b&fid=0x8600FF01")).json();
    expect(b.explanation.decision.rule).not.toBe("a-no-uid");
    expect((await get(app, "/api/explain?seq=999999")).statusCode).toBe(404);
    expect((await get(app, "/api/explain?vm=a&fid=0x1FFFFFFFF")).json().errors[0].path).toBe("fid");
  });

  it("filters the trace by VM and function", async () => {
    const { app, m, view } = await start();
    m.vm("a").vcpu(0).hvc(0x8000_0000);
    m.vm("a").vcpu(0).hvc(0x8400_0000);
    m.vm("b").vcpu(0).hvc(0x8400_0000);
    view.poll();
    const ev = (await get(app, "/api/trace?vm=a&fn=PSCI_VERSION")).json().events;
    expect(ev.map((e: { vm: string; function: string }) => [e.vm, e.function])).toEqual([["a", "PSCI_VERSION"]]);
    expect((await get(app, "/api/trace?limit=0")).statusCode).toBe(400);
  });

  it("loads a new policy between calls: the next call is decided by it, and the change is in the stream and the list", async () => {
    const { app, m, view, opts } = await start();
    expect(m.vm("b").vcpu(0).hvc(0x8400_0000).x0).toBe(0x1_0001n);
    const seen: string[] = [];
    view.subscribe((items) => seen.push(...items.map((i) => i.type)));
    const text = POLICY.replace("  b: {}", "  b:\n    grants:\n      - { name: b-no-psci-version, id: 0x84000000, action: deny }");
    const r = await post(app, "/api/policy", { text });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ ok: true, changed: ["b"] });
    expect(r.json().diff).toContain("+   b-no-psci-version: id 0x84000000 -> deny");
    expect(m.vm("b").vcpu(0).hvc(0x8400_0000).x0).toBe(0xffff_ffffn);
    view.poll();
    expect(view.denialsList("b")[0]!.rule).toBe("b-no-psci-version");
    expect(seen).toContain("policy-change");
    const p = (await get(app, "/api/policy")).json();
    expect(p.lines).toContain("  b-no-psci-version: id 0x84000000 -> deny");
    expect(p.changes[0]).toMatchObject({ type: "policy-change", vms: ["b"] });
    // The change sits in the trace between the calls it separates.
    const trace = (await get(app, "/api/trace?vm=b")).json().events.map((e: { type: string; function?: string; rule?: string }) => (e.type === "call" ? `${e.function} ${e.rule}` : e.type));
    expect(trace).toEqual(["PSCI_VERSION default:psci", "policy-change", "PSCI_VERSION b-no-psci-version"]);
    expect(opts.config.vms.find((v) => v.name === "b")!.rules).toHaveLength(1);
    // VM a's policy is untouched.
    expect(m.vm("a").vcpu(0).hvc(0x8400_0000).x0).toBe(0x1_0001n);
  });

  it("refuses an invalid policy with errors naming the field, and changes nothing", async () => {
    const { app, m } = await start();
    const bad = await post(app, "/api/policy", { text: POLICY.replace("action: deny", "action: frobnicate") });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0].path).toMatch(/^vms\.a\.grants\[0\]/);
    const vcpus = await post(app, "/api/policy", { text: POLICY.replace("vcpus: 2", "vcpus: 3") });
    expect(vcpus.json().errors).toEqual([{ path: "vms.a.vcpus", message: expect.stringContaining("cannot change") }]);
    const gone = await post(app, "/api/policy", { config: { vms: { a: { vcpus: 2 } } } });
    expect(gone.json().errors.map((e: { path: string }) => e.path)).toContain("vms.b");
    const yaml = await post(app, "/api/policy", { text: "vms: [" });
    expect(yaml.statusCode).toBe(400);
    expect((await post(app, "/api/policy", "nope")).statusCode).toBe(400);
    expect(m.vm("a").vcpu(0).hvc(0x8600_ff01).x0).toBe(0xffff_ffffn);
    expect(m.vm("a").vcpu(0).hvc(0x8400_0000).x0).toBe(0x1_0001n);
  });

  it("resets and destroys a VM; a destroyed VM is gone from the router", async () => {
    const { app, m } = await start();
    expect((await post(app, "/api/vms/a/reset", {})).json()).toMatchObject({ ok: true, action: "reset" });
    expect((await post(app, "/api/vms/b/destroy", {})).json()).toMatchObject({ ok: true, action: "destroy" });
    expect((await post(app, "/api/vms/b/destroy", {})).statusCode).toBe(409);
    expect((await get(app, "/api/vms/b")).json().state).toBe("destroyed");
    expect(m.hypervisor.router.getVm("b")).toBeUndefined();
    // GET never acts.
    expect((await get(app, "/api/vms/a/reset")).statusCode).toBe(404);
  });
});

describe("who may use it", () => {
  it("refuses a Host it does not answer on (DNS rebinding)", async () => {
    const { app } = await start();
    const r = await get(app, "/api/vms", { host: "evil.example:8123" });
    expect(r.statusCode).toBe(421);
    expect(r.json().errors[0].path).toBe("Host");
  });

  it("refuses a cross-origin or non-JSON request that would change something (CSRF)", async () => {
    const { app, m } = await start();
    const cross = await post(app, "/api/vms/a/destroy", {}, { origin: "http://evil.example" });
    expect(cross.statusCode).toBe(403);
    const form = await app.inject({ method: "POST", url: "/api/vms/a/destroy", payload: "x=1", headers: { host: HOST, "content-type": "application/x-www-form-urlencoded" } });
    expect(form.statusCode).toBe(415);
    const plain = await app.inject({ method: "POST", url: "/api/policy", payload: "{}", headers: { host: HOST, "content-type": "text/plain" } });
    expect(plain.statusCode).toBe(415);
    expect((await app.inject({ method: "DELETE", url: "/api/vms/a", headers: { host: HOST } })).statusCode).toBe(405);
    expect(m.hypervisor.router.getVm("a")).toBeDefined();
    // The page's own origin may.
    expect((await post(app, "/api/vms/a/reset", {}, { origin: `http://${HOST}` })).statusCode).toBe(200);
  });

  it("with a token, every route needs it: header, query (which sets a SameSite=Strict cookie) or that cookie", async () => {
    const { app } = await start({ token: "s3cret-token" });
    for (const url of ["/", "/app.js", "/uplot.js", "/api/vms", "/api/policy"]) expect((await get(app, url)).statusCode, url).toBe(401);
    expect((await get(app, "/api/vms", { authorization: "Bearer wrong-token!" })).statusCode).toBe(401);
    expect((await post(app, "/api/vms/a/destroy", {})).statusCode).toBe(401);
    expect((await get(app, "/api/vms", { authorization: "Bearer s3cret-token" })).statusCode).toBe(200);
    const page = await get(app, "/?token=s3cret-token");
    expect(page.statusCode).toBe(200);
    const cookie = String(page.headers["set-cookie"]);
    expect(cookie).toMatch(/HttpOnly; SameSite=Strict/);
    expect((await get(app, "/app.js", { cookie: cookie.split(";")[0]! })).statusCode).toBe(200);
  });

  it("limits request bodies", async () => {
    const { app } = await start();
    const r = await post(app, "/api/policy", { text: "#".repeat(UI_LIMITS.bodyBytes) });
    expect(r.statusCode).toBe(413);
  });

  it("serves the page and uPlot from node_modules, with a content security policy", async () => {
    const { app } = await start();
    const page = await get(app, "/");
    expect(page.body).toContain("<script src=\"uplot.js\"");
    expect(page.headers["content-security-policy"]).toContain("default-src 'self'");
    expect((await get(app, "/uplot.js")).body).toContain("uPlot");
  });
});

describe("a hostile guest's call volume", () => {
  it("cannot grow the view: distinct IDs beyond the limit are counted as other, bursts beyond a poll are skipped and counted", async () => {
    const { m, view } = await start();
    const v = m.vm("a").vcpu(0);
    let made = 0;
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 2000; i++, made++) v.hvc(0x8300_0000 + made); // distinct vendor-specific IDs
      view.poll();
    }
    const calls = view.calls("a");
    expect(calls.length).toBeLessThanOrEqual(LIVE_LIMITS.callKeys + 1);
    expect(calls.find((c) => c.function === "(other)")!.calls).toBe(made - LIVE_LIMITS.callKeys);
    // One burst larger than the ring: what it dropped and what one poll reads past are counted, not kept.
    for (let i = 0; i < m.trace.capacity + 5000; i++) v.hvc(0x8000_0000);
    view.poll();
    expect(view.missed).toBe(m.trace.capacity + 5000 - LIVE_LIMITS.eventsPerPoll);
    expect(view.recentEvents({}, 5000)).toHaveLength(LIVE_LIMITS.recent);
  });

  it("a stream client that does not read is dropped, not buffered for; a filtered client sees only its VM", async () => {
    const { app, m, view, opts } = await start();
    await app.listen({ host: "127.0.0.1", port: 0 });
    const host = `127.0.0.1:${(app.server.address() as { port: number }).port}`;
    opts.hosts.add(host);
    const connect = (q: string) =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`ws://${host}/api/stream${q}`, { headers: { origin: `http://${host}` } });
        ws.once("open", () => resolve(ws));
        ws.once("error", reject);
      });
    const slow = await connect("");
    const onlyB = await connect("?vm=b");
    const bItems: { vm: string }[] = [];
    onlyB.on("message", (d) => bItems.push(...(JSON.parse(String(d)) as { items: { vm: string }[] }).items));
    let closed: number | null = null;
    slow.on("close", (code) => (closed = code));
    // The slow client stops reading: its socket's data piles up in the kernel, then in the server.
    (slow as unknown as { _socket: { pause(): void } })._socket.pause();
    const a = m.vm("a").vcpu(0), b = m.vm("b").vcpu(0);
    for (let round = 0; round < 400 && closed === null; round++) {
      for (let i = 0; i < LIVE_LIMITS.eventsPerPoll; i++) a.hvc(0x8000_0000);
      b.hvc(0x8400_0000);
      view.poll();
      await new Promise((r) => setTimeout(r, 5));
    }
    (slow as unknown as { _socket: { resume(): void } })._socket.resume();
    for (let i = 0; i < 100 && closed === null; i++) await new Promise((r) => setTimeout(r, 20));
    expect(closed).toBe(1008);
    expect(bItems.length).toBeGreaterThan(0);
    expect(bItems.every((e) => e.vm === "b")).toBe(true);
    onlyB.close();
  });

  it("refuses a stream from another origin (cross-site WebSocket)", async () => {
    const { app, opts } = await start();
    await app.listen({ host: "127.0.0.1", port: 0 });
    const host = `127.0.0.1:${(app.server.address() as { port: number }).port}`;
    opts.hosts.add(host);
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://${host}/api/stream`, { headers: { origin: "http://evil.example" } });
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("open", () => resolve(101));
      ws.on("error", () => undefined);
    });
    expect(status).toBe(403);
  });
});
