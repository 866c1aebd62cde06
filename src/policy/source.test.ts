import { describe, expect, it } from "vitest";
import { parseConfigText, validateConfig } from "./load.js";
import { MAX_ALIAS_NODES, MAX_CONFIG_BYTES, parseConfigData } from "./source.js";

function errorsOf(text: string, format: "yaml" | "json" = "yaml") {
  const r = parseConfigText(text, format);
  if (r.ok) throw new Error("expected the config to be rejected");
  return r.errors;
}

/** Nine anchors, each a list of nine aliases of the one before: 9^9 strings once expanded. */
const BILLION_LAUGHS = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  ..."bcdefghi".split("").map((k, i) => `${k}: &${k} [${Array(9).fill(`*${"abcdefghi"[i]}`).join(",")}]`),
  "vms: { a: {} }",
].join("\n");

describe("config text: bounded and exact before the schema sees it", () => {
  it("refuses a YAML alias bomb at once, in one line", () => {
    const start = performance.now();
    const e = errorsOf(BILLION_LAUGHS);
    expect(performance.now() - start).toBeLessThan(1000);
    expect(e).toHaveLength(1);
    expect(e[0]!.message).toMatch(new RegExp(`YAML aliases expand to more than ${MAX_ALIAS_NODES} values`));
  });

  it("refuses an alias inside the value it names, in one short line", () => {
    expect(errorsOf("vms:\n  a: &x { grants: [ *x ] }\n")).toEqual([{ path: "vms.a.grants[0]", message: "the alias *x is inside the value it names (line 2, column 21)" }]);
  });

  it("says why a name is refused, not that a key is invalid", () => {
    expect(errorsOf("vms:\n  1dom: {}\n")).toEqual([{ path: "vms.1dom", message: "a VM name is a letter then up to 31 letters, digits, _ or -" }]);
  });

  it("still reads anchors and aliases used a few times", () => {
    const r = parseConfigText("vms:\n  a: { grants: &g [ { owner: sip, calls: [fast32], action: forward } ] }\n  b: { grants: *g }\n");
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.value.vms.map((v) => v.rules[0]!.selector)).toEqual([
      { kind: "owner", first: 2, last: 2, calls: ["fast32"] },
      { kind: "owner", first: 2, last: 2, calls: ["fast32"] },
    ]);
  });

  it("refuses a text above MAX_CONFIG_BYTES before parsing it", () => {
    const big = "vms:\n  a: {}\n" + "#".repeat(MAX_CONFIG_BYTES);
    const start = performance.now();
    const e = errorsOf(big);
    expect(performance.now() - start).toBeLessThan(500);
    expect(e).toEqual([{ path: "(file)", message: `${big.length} bytes is more than a config may have (${MAX_CONFIG_BYTES} bytes, 1 MiB)` }]);
    // Counted in UTF-8 bytes: 600,000 two-byte characters are 1.2 MB.
    expect(errorsOf(`vms:\n  a: {}\n# ${"é".repeat(600_000)}\n`)[0]!.message).toMatch(/bytes is more than a config may have/);
  });

  it("refuses a JSON key given twice, with its path, as YAML does", () => {
    expect(errorsOf('{"vms": {"a": {"vcpus": 2}, "a": {"id": 7}}}', "json")).toEqual([
      { path: "vms.a", message: "this key is given twice (JSON.parse would keep only the last) (line 1, column 29)" },
    ]);
    expect(errorsOf("vms:\n  a: { vcpus: 2 }\n  a: { id: 7 }\n")).toEqual([{ path: "vms.a", message: "this key is given twice (line 3, column 3)" }]);
  });

  it("keeps a VM named __proto__ from vanishing: it is refused, in JSON and YAML", () => {
    for (const [text, format] of [['{"vms": {"__proto__": {"vcpus": 2}, "a": {}}}', "json"], ["vms:\n  __proto__: { vcpus: 2 }\n  a: {}\n", "yaml"]] as const) {
      const e = errorsOf(text, format);
      expect(e).toHaveLength(1);
      expect(e[0]!.path).toBe("vms.__proto__");
    }
    // Data made by JSON.parse has the key as its own property: refused too.
    const r = validateConfig(JSON.parse('{"vms": {"__proto__": {}, "a": {}}}'));
    expect(r.ok).toBe(false);
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).vcpus).toBeUndefined();
  });

  it("reads objects without prototypes: inherited names are not keys", () => {
    const d = parseConfigData('{"a": 1}', "json");
    expect(d.ok && Object.getPrototypeOf(d.data)).toBeNull();
    expect(errorsOf("platform:\n  sip: { nodes: [ { id: 1, owner: toString } ] }\nvms:\n  a: {}\n")).toEqual([{ path: "platform.sip.nodes[0].owner", message: 'no VM named "toString"' }]);
    expect(errorsOf('{"vms": {"a": {"grants": [{"id": "0x82000001", "action": "delegate:constructor"}]}}}', "json")[0]!.message).toMatch(/no delegate named "constructor"/);
  });

  it("reports an integer above 2^53 as the user wrote it, in YAML and JSON", () => {
    expect(errorsOf("vms:\n  a: { id: 0xFFFFFFFFFFFFFFFFF }\n")).toEqual([{ path: "vms.a.id", message: "id: 0xFFFFFFFFFFFFFFFFF is outside 0x1-0xFFFE" }]);
    expect(errorsOf('{"vms": {"a": {"id": 18446744073709551617}}}', "json")).toEqual([{ path: "vms.a.id", message: "id: 18446744073709551617 is outside 0x1-0xFFFE" }]);
    expect(errorsOf("vms:\n  a: { vcpus: 0x10000000000000001 }\n")).toEqual([{ path: "vms.a.vcpus", message: "vcpus: 0x10000000000000001 is outside 1-256" }]);
  });

  it("quotes a value below 2^53 as the user wrote it too", () => {
    expect(errorsOf("vms:\n  a: { id: 0x1FFFF }\n")).toEqual([{ path: "vms.a.id", message: "id: 0x1FFFF is outside 0x1-0xFFFE" }]);
    expect(errorsOf("vms:\n  a:\n    grants:\n      - { id: 0x1FFFFFFFF, action: forward }\n")).toEqual([{ path: "vms.a.grants[0].id", message: "id: 0x1FFFFFFFF is outside 0x0-0xFFFFFFFF" }]);
    expect(errorsOf("vms:\n  a: { id: 70000 }\n")).toEqual([{ path: "vms.a.id", message: "id: 70000 is outside 0x1-0xFFFE" }]);
  });

  it("reads 64-bit values exactly: a hex value above 2^53 keeps every bit", () => {
    const r = parseConfigText("vms:\n  a:\n    grants:\n      - { id: 0xC2000011, args: { x1: [0xFFFFFFFFFFFFFFFF, 0x20000000000001] }, action: forward }\n");
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.value.vms[0]!.rules[0]!.constraints[0]!.ranges).toEqual([[0xffff_ffff_ffff_ffffn, 0xffff_ffff_ffff_ffffn], [0x20_0000_0000_0001n, 0x20_0000_0000_0001n]]);
    const j = parseConfigText('{"vms": {"a": {"grants": [{"id": 3254779921, "args": {"x1": [18446744073709551615]}, "action": "forward"}]}}}', "json");
    if (!j.ok) throw new Error(JSON.stringify(j.errors));
    expect(j.value.vms[0]!.rules[0]!.constraints[0]!.ranges).toEqual([[0xffff_ffff_ffff_ffffn, 0xffff_ffff_ffff_ffffn]]);
  });

  it("refuses nesting deeper than any config needs, without a stack overflow", () => {
    expect(errorsOf("[".repeat(200_000) + "]".repeat(200_000), "json")[0]!.message).toMatch(/nested more than 64 levels deep/);
    expect(errorsOf(`a: ${"[".repeat(100)}${"]".repeat(100)}\nvms: { a: {} }\n`)[0]!.message).toMatch(/nested more than 64 levels deep/);
  });

  it("reads JSON strictly: one line per problem, with the line and column", () => {
    expect(errorsOf('{"vms": {"a": {},}}', "json")).toEqual([{ path: "(line 1, column 18)", message: 'not valid JSON: expected """, found "}"' }]);
    expect(errorsOf('{"vms": {"a": {}}} x', "json")).toEqual([{ path: "(line 1, column 20)", message: "not valid JSON: text after the end of the JSON value" }]);
    expect(errorsOf('{\n "vms": {"a": {"vcpus": 01}}}', "json")[0]!.path).toBe("(line 2, column 26)");
    const ok = parseConfigText('\ufeff{"vms": {"a\\u0062": {"vcpus": 2e0}}}', "json");
    expect(ok.ok && ok.value.vms.map((v) => [v.name, v.vcpus])).toEqual([["ab", 2]]);
  });
});
