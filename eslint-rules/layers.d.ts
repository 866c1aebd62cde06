import type { Rule } from "eslint";

export declare const LAYER_RANK: Record<string, number>;
declare const plugin: { rules: { "layer-direction": Rule.RuleModule; "pure-core": Rule.RuleModule } };
export default plugin;
