/**
 * The dashboard's HTTP server: the JSON control API (docs/api.md), the trace stream over a WebSocket and
 * the page itself (src/ui/page, with uPlot from node_modules: nothing from a CDN). Fastify and
 * @fastify/websocket do the HTTP and WebSocket work.
 *
 * Who may use it (docs/api.md, "Security"): by default it listens on 127.0.0.1 only. Every request's Host
 * header must name the address it listens on (a DNS-rebinding page reaches a loopback port under its own
 * host name, which is refused). With a token, every route needs it: `Authorization: Bearer`, the
 * `token` query parameter (which also sets a SameSite=Strict cookie, for the page's own requests) or that
 * cookie. A request that changes anything must be a POST with a JSON body, from the same origin when a
 * browser sends it (a cross-site form cannot send JSON; a cross-site fetch has a foreign Origin). Bodies
 * are limited; a stream client that falls behind is disconnected, never buffered for.
 */
import { timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import websocket from "@fastify/websocket";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Config } from "../policy/load.js";
import { parseConfigData } from "../policy/source.js";
import { planPolicy, policyLines, type VmActions } from "./control.js";
import { matches, type LiveView, type StreamItem } from "./live.js";

export const UI_LIMITS = {
  /** Request bodies at most (a policy document is far smaller; config files are at most 1 MiB). */
  bodyBytes: 256 * 1024,
  /** Bytes queued to one stream client before it is dropped as too slow. */
  streamBacklogBytes: 1 << 20,
  /** Stream clients at once. */
  streamClients: 16,
  /** Items in one stream message at most; the rest of a poll's batch is counted as skipped. */
  itemsPerMessage: 500,
  /** Trace events one GET returns at most. */
  traceLimit: 1000,
} as const;

export interface UiServerOptions {
  readonly view: LiveView;
  readonly actions: VmActions;
  /** The policy now in force; replaced when a change is applied. */
  config: Config;
  /** The policy document as first loaded (the page's editor starts from it). */
  readonly policyText: string;
  /** The token every route needs; none: loopback only (the caller refuses other addresses). */
  readonly token?: string;
  /** Accepted Host headers ("127.0.0.1:8080"), filled in once the port is known; "*": any (only with a token, on a wildcard address). */
  readonly hosts: Set<string>;
  /** Each policy change, for the run's log. */
  readonly log?: (line: string) => void;
}

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const PAGE: Record<string, { file: string; type: string }> = {
  "/": { file: join(here, "page", "index.html"), type: "text/html; charset=utf-8" },
  "/app.js": { file: join(here, "page", "app.js"), type: "text/javascript; charset=utf-8" },
  "/style.css": { file: join(here, "page", "style.css"), type: "text/css; charset=utf-8" },
  "/uplot.js": { file: join(dirname(require.resolve("uplot")), "uPlot.iife.min.js"), type: "text/javascript; charset=utf-8" },
  "/uplot.css": { file: join(dirname(require.resolve("uplot")), "uPlot.min.css"), type: "text/css; charset=utf-8" },
};

const COOKIE = "smcvisor_ui";

function sameToken(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given), b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookieToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === COOKIE) return decodeURIComponent(v.join("="));
  }
  return undefined;
}

const bad = (reply: FastifyReply, code: number, path: string, message: string) => reply.code(code).send({ ok: false, errors: [{ path, message }] });

export async function buildUiServer(opts: UiServerOptions): Promise<FastifyInstance> {
  const app = Fastify({ bodyLimit: UI_LIMITS.bodyBytes, logger: false });
  await app.register(websocket, { options: { maxPayload: 4096 } });
  const { view } = opts;

  app.addHook("onRequest", async (req, reply) => {
    const host = req.headers.host ?? "";
    if (!opts.hosts.has("*") && !opts.hosts.has(host.toLowerCase())) return bad(reply, 421, "Host", `not an address this server answers on (${[...opts.hosts].join(", ")})`);
    const origin = req.headers.origin;
    // A browser names the page's origin on every POST and WebSocket: it must be this server's.
    if (origin !== undefined && (req.method !== "GET" || req.headers.upgrade !== undefined) && origin !== `http://${host}`) return bad(reply, 403, "Origin", `cross-origin request refused (${origin})`);
    if (opts.token !== undefined) {
      const q = (req.query as Record<string, unknown> | undefined)?.token;
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
      const given = typeof q === "string" ? q : (bearer ?? cookieToken(req.headers.cookie));
      if (!sameToken(given, opts.token)) return bad(reply, 401, "token", "this server needs its token (Authorization: Bearer, or ?token=)");
      if (typeof q === "string") reply.header("Set-Cookie", `${COOKIE}=${encodeURIComponent(q)}; HttpOnly; SameSite=Strict; Path=/`);
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      if (req.method !== "POST") return bad(reply, 405, "method", "only GET and POST");
      if (!/^application\/json\b/i.test(req.headers["content-type"] ?? "")) return bad(reply, 415, "Content-Type", "a request that changes something sends JSON (application/json)");
    }
    reply.header("X-Content-Type-Options", "nosniff");
    reply.header("X-Frame-Options", "DENY");
    reply.header("Cache-Control", "no-store");
  });
  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const code = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    return bad(reply, code, "(request)", code === 413 ? `the body is larger than ${UI_LIMITS.bodyBytes} bytes` : err.message);
  });

  for (const [url, f] of Object.entries(PAGE)) {
    app.get(url, async (_req, reply) => {
      reply.header("Content-Security-Policy", "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'");
      return reply.type(f.type).send(readFileSync(f.file));
    });
  }

  const q = (req: FastifyRequest) => req.query as Record<string, string | undefined>;
  app.get("/api/vms", async () => ({ vms: view.vms() }));
  app.get("/api/vms/:name", async (req, reply) => {
    const name = (req.params as { name: string }).name;
    const vm = view.vms().find((v) => (v as { name: string }).name === name);
    return vm ?? bad(reply, 404, "name", `no VM named "${name}"`);
  });
  app.get("/api/calls", async (req) => ({ calls: view.calls(q(req).vm) }));
  app.get("/api/denials", async (req) => ({ denials: view.denialsList(q(req).vm) }));
  app.get("/api/rates", async () => ({ rates: view.rates() }));
  app.get("/api/trace", async (req, reply) => {
    const limit = q(req).limit === undefined ? 200 : Number(q(req).limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > UI_LIMITS.traceLimit) return bad(reply, 400, "limit", `an integer from 1 to ${UI_LIMITS.traceLimit}`);
    return { missed: view.missed, events: view.recentEvents(filterOf(q(req)), limit) };
  });
  app.get("/api/explain", async (req, reply) => {
    const p = q(req);
    if (p.seq !== undefined) {
      if (!/^\d{1,15}$/.test(p.seq)) return bad(reply, 400, "seq", "a trace sequence number");
      const r = view.explainSeq(Number(p.seq));
      return "error" in r ? bad(reply, 404, "seq", r.error) : r;
    }
    if (p.vm === undefined || p.fid === undefined) return bad(reply, 400, "(query)", "give seq, or vm and fid (and args, comma-separated)");
    const num = (s: string) => (/^(0x[0-9a-f]{1,16}|\d{1,20})$/i.test(s) ? BigInt(s) : null);
    const fid = num(p.fid);
    if (fid === null || fid > 0xffff_ffffn) return bad(reply, 400, "fid", "a 32-bit function ID (decimal or 0x hex)");
    const args = (p.args ?? "").split(",").filter((s) => s !== "").map(num);
    const badArg = args.findIndex((a) => a === null || a >= 1n << 64n);
    if (badArg >= 0 || args.length > 17) return bad(reply, 400, badArg >= 0 ? `args[${badArg}]` : "args", "up to 17 64-bit values (decimal or 0x hex)");
    const r = view.explainCall(p.vm, Number(fid), args as bigint[]);
    return "error" in r ? bad(reply, 404, "vm", r.error) : { explanation: r };
  });
  app.get("/api/policy", async () => ({ lines: policyLines(opts.config), text: opts.policyText, changes: view.policyChanges() }));

  for (const [action, run] of [["reset", opts.actions.reset], ["power-off", opts.actions.powerOff], ["destroy", opts.actions.destroy]] as const) {
    app.post(`/api/vms/:name/${action}`, async (req, reply) => {
      const name = (req.params as { name: string }).name;
      const r = await run.call(opts.actions, name);
      return r.ok ? { ok: true, vm: name, action, detail: r.detail } : bad(reply, 409, "name", r.error);
    });
  }

  app.post("/api/policy", async (req, reply) => {
    const body = req.body as { config?: unknown; text?: unknown; format?: unknown } | null;
    if (body === null || typeof body !== "object") return bad(reply, 400, "(body)", "a JSON object: { config } or { text, format }");
    let data: unknown;
    if (typeof body.text === "string") {
      const fmt = body.format ?? "yaml";
      if (fmt !== "yaml" && fmt !== "json") return bad(reply, 400, "format", 'yaml or json');
      const parsed = parseConfigData(body.text, fmt);
      if (!parsed.ok) return reply.code(400).send({ ok: false, errors: parsed.errors });
      data = parsed.data ?? {};
    } else if (body.config !== undefined) data = body.config;
    else return bad(reply, 400, "(body)", "a JSON object: { config } or { text, format }");
    const plan = planPolicy(view.target.hypervisor, opts.config, data, (next) => {
      opts.config = { ...next, ...(opts.config.baseDir !== undefined ? { baseDir: opts.config.baseDir } : {}) };
    });
    if (!plan.ok) return reply.code(400).send({ ok: false, errors: plan.errors });
    const { changed, diff } = plan.apply();
    const change = view.policyChanged({ vms: changed, diff: diff.join("\n"), source: req.ip });
    opts.log?.(`policy changed through the control API: ${changed.length > 0 ? changed.join(", ") : "no VM's grants differ"}`);
    return { ok: true, changed, diff, at: change.at };
  });

  let clients = 0;
  app.get("/api/stream", { websocket: true }, (socket, req) => {
    if (clients >= UI_LIMITS.streamClients) {
      socket.close(1013, "too many stream clients");
      return;
    }
    clients++;
    const filter = filterOf(q(req));
    let skipped = 0;
    const stop = view.subscribe((items: readonly StreamItem[]) => {
      if (socket.bufferedAmount > UI_LIMITS.streamBacklogBytes) {
        // Too slow to keep up: dropped, not buffered for.
        stop();
        socket.close(1008, "stream client too slow");
        return;
      }
      const mine = items.filter((e) => matches(e, filter));
      if (mine.length === 0) return;
      const send = mine.slice(Math.max(0, mine.length - UI_LIMITS.itemsPerMessage));
      skipped += mine.length - send.length;
      socket.send(JSON.stringify({ skipped, items: send }));
    });
    socket.on("close", () => {
      stop();
      clients--;
    });
    // The stream is one-way: a client that talks is ignored (maxPayload bounds each message).
    socket.on("message", () => undefined);
  });
  return app;
}

function filterOf(p: Record<string, string | undefined>): { vm?: string; fn?: string } {
  return { ...(p.vm ? { vm: p.vm } : {}), ...(p.fn ? { fn: p.fn } : {}) };
}
