// The QMP client against a scripted server on a unix socket: the greeting and negotiation, replies in order
// with events between them, errors, and a peer that misbehaves (no greeting, garbage, an endless line, a
// hang-up) failing the calls with a reason rather than hanging or throwing at the reader.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Qmp } from "./qmp.js";

const dir = mkdtempSync(join(tmpdir(), "smcvisor-qmp-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const servers: Server[] = [];
afterEach(() => servers.splice(0).forEach((s) => s.close()));

/** A server that greets (unless told not to) and answers each command line with `answer`. */
async function serve(answer: (cmd: { execute: string; arguments?: unknown }, sock: Socket) => void, greeting = '{"QMP": {"version": {}, "capabilities": []}}\n'): Promise<string> {
  const path = join(dir, `qmp-${Math.random().toString(36).slice(2)}.sock`);
  const server = createServer((sock) => {
    if (greeting) sock.write(greeting);
    let buf = "";
    sock.on("data", (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        answer(JSON.parse(line) as { execute: string }, sock);
      }
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(path, r));
  return path;
}

describe("Qmp", () => {
  it("negotiates, then gets each command's return in order, skipping events, and waits for a named event", async () => {
    const seen: string[] = [];
    const path = await serve((c, sock) => {
      seen.push(c.execute);
      if (c.execute === "system_reset") sock.write('{"event": "STOP", "data": {}}\n{"return": {}}\n{"event": "RESET", "data": {"guest": false}}\n');
      else if (c.execute === "query-status") sock.write(`{"return": {"status": "paused", "running": false}}\n`);
      else sock.write('{"return": {}}\n');
    });
    const q = await Qmp.connect(path);
    const reset = q.nextEvent("RESET");
    expect(await q.execute("system_reset")).toEqual({});
    await reset;
    expect(await q.execute("query-status")).toEqual({ status: "paused", running: false });
    expect(seen).toEqual(["qmp_capabilities", "system_reset", "query-status"]);
    q.close();
    await expect(q.execute("cont")).rejects.toThrow(/closed/);
  });

  it("rejects a command with QEMU's error description and class", async () => {
    const path = await serve((c, sock) => sock.write(c.execute === "qmp_capabilities" ? '{"return": {}}\n' : '{"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}\n'));
    const q = await Qmp.connect(path);
    await expect(q.execute("nope")).rejects.toThrow("QMP nope: The command nope has not been found (CommandNotFound)");
    q.close();
  });

  it("fails, with a reason, against a peer that does not greet, sends garbage, an endless line or hangs up", async () => {
    await expect(Qmp.connect(await serve(() => undefined, ""), 200)).rejects.toThrow(/no greeting from QEMU within 200 ms/);
    await expect(Qmp.connect(await serve(() => undefined, '{"hello": 1}\n'))).rejects.toThrow(/no greeting/);
    await expect(Qmp.connect(await serve(() => undefined, "not json\n"))).rejects.toThrow(/not JSON/);
    await expect(Qmp.connect(await serve(() => undefined, "x".repeat((1 << 20) + 10)))).rejects.toThrow(/longer than/);
    const q = await Qmp.connect(await serve((c, sock) => (c.execute === "qmp_capabilities" ? sock.write('{"return": {}}\n') : sock.destroy())));
    const ev = q.nextEvent("RESET");
    await expect(q.execute("stop")).rejects.toThrow(/closed the connection/);
    await expect(ev).rejects.toThrow(/closed the connection/);
    await expect(Qmp.connect(join(dir, "absent.sock"))).rejects.toThrow(/ENOENT/);
  });

  it("a named event that never comes times out", async () => {
    const q = await Qmp.connect(await serve((_c, sock) => sock.write('{"return": {}}\n')));
    await expect(q.nextEvent("RESET", 50)).rejects.toThrow(/no RESET event within 50 ms/);
    q.close();
  });
});
