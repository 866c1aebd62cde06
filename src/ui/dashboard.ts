/**
 * `smcvisor run … --ui [PORT]`: the dashboard and control API beside a QEMU run. Listens on 127.0.0.1
 * unless told otherwise; any other address needs a token (a loopback address is reachable only from
 * this machine, and the Host check keeps other sites' pages out; an address others can reach is not).
 * The view polls the trace every POLL_MS: the guests' calls never wait for it.
 */
import { isIP } from "node:net";
import { dirname, isAbsolute, resolve } from "node:path";
import { parseDocument } from "yaml";
import type { QemuMachine } from "../machine/qemu/machine.js";
import { readConfigText } from "../machine/config-file.js";
import { LiveView } from "./live.js";
import { qemuTarget } from "./qemu-target.js";
import { buildUiServer } from "./server.js";

export const POLL_MS = 250;
export const DEFAULT_UI_PORT = 8080;
export const MIN_TOKEN_LENGTH = 16;

export interface UiSettings {
  readonly port: number;
  readonly host: string;
  readonly token?: string;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/** Checks the --ui options; a problem is a message naming the option. */
export function uiSettings(port: string | true, host: string | undefined, token: string | undefined): UiSettings | { error: string } {
  const p = port === true ? DEFAULT_UI_PORT : /^\d{1,5}$/.test(port) ? Number(port) : NaN;
  if (!Number.isInteger(p) || p < 0 || p > 65535) return { error: `--ui: "${String(port)}" is not a TCP port (0-65535)` };
  const h = host ?? "127.0.0.1";
  if (h !== "localhost" && isIP(h) === 0) return { error: `--ui-host: "${h}" is not an IP address` };
  if (token !== undefined && (token.length < MIN_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(token))) return { error: `--ui-token: at least ${MIN_TOKEN_LENGTH} printable characters, no spaces` };
  if (!LOOPBACK.has(h) && token === undefined) return { error: `--ui-host ${h}: an address other machines can reach needs --ui-token` };
  return { port: p, host: h, ...(token !== undefined ? { token } : {}) };
}

/** The Host headers a browser sends for this address and port. */
export function hostsFor(host: string, port: number, token: boolean): Set<string> {
  if (token && (host === "0.0.0.0" || host === "::")) return new Set(["*"]);
  const out = new Set<string>();
  const add = (h: string) => out.add(`${h}:${port}`.toLowerCase());
  if (host === "127.0.0.1" || host === "localhost") ["127.0.0.1", "localhost"].forEach(add);
  else if (host === "::1") ["[::1]", "localhost"].forEach(add);
  else add(isIP(host) === 6 ? `[${host}]` : host);
  return out;
}

/** The policy part of a scenario as its text (comments and number formats kept): what the page's editor starts from. */
export function policyDocument(scenarioPath: string): string {
  const read = readConfigText(scenarioPath);
  if (!read.ok) return "";
  const doc = parseDocument(read.text);
  const policy = doc.get("policy");
  if (typeof policy === "string") {
    const p = readConfigText(isAbsolute(policy) ? policy : resolve(dirname(scenarioPath), policy));
    return p.ok ? p.text : "";
  }
  for (const k of ["name", "description", "guests", "timeoutSeconds", "trace"]) doc.delete(k);
  return String(doc);
}

export interface Dashboard {
  readonly url: string;
  readonly view: LiveView;
  close(): Promise<void>;
}

export async function startDashboard(m: QemuMachine, settings: UiSettings, policyText: string, log?: (line: string) => void): Promise<Dashboard> {
  const target = qemuTarget(m);
  const view = new LiveView(target);
  const hosts = new Set<string>();
  const app = await buildUiServer({ view, actions: target, config: m.config, policyText, hosts, ...(settings.token !== undefined ? { token: settings.token } : {}), ...(log ? { log } : {}) });
  await app.listen({ host: settings.host, port: settings.port });
  const port = (app.server.address() as { port: number }).port;
  for (const h of hostsFor(settings.host, port, settings.token !== undefined)) hosts.add(h);
  const timer = setInterval(() => view.poll(), POLL_MS);
  timer.unref();
  const shown = isIP(settings.host) === 6 ? `[${settings.host}]` : settings.host;
  return {
    url: `http://${shown}:${port}/`,
    view,
    async close() {
      clearInterval(timer);
      view.poll();
      await app.close();
    },
  };
}

/** Takes `--ui [PORT]` out of a command line: the port is the next word when it is a number. */
export function takeUiFlag(argv: readonly string[]): { argv: string[]; ui: string | true | undefined } {
  const out: string[] = [];
  let ui: string | true | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      out.push(...argv.slice(i));
      break;
    }
    if (a === "--ui") ui = /^\d+$/.test(argv[i + 1] ?? "") ? argv[++i]! : true;
    else if (a.startsWith("--ui=")) ui = a.slice(5);
    else out.push(a);
  }
  return { argv: out, ui };
}
