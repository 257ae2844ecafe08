/**
 * Cost of one policy decision with many domain rules. Builds a {@link DomainPolicyEngine} from
 * generated rules in memory (no database), then times `decide` over a fixed mix of hosts: exact
 * hits, subdomain hits, misses, and hosts in Unicode or with ports that need normalisation.
 */
import os from "node:os";
import { parseArgs } from "node:util";
import { DomainPolicyEngine, type EngineRule } from "../src/policy/engine.ts";
import { parsePositiveInteger } from "./lib/stats.ts";

const USAGE = `Usage: node bench/policy-gate.ts [options]

Prints nanoseconds per decision for each host kind.

  --rules N        domain rules in the engine, half with subdomains (default 10000)
  --decisions N    timed decisions per host kind and round (default 1000000)
  --rounds N       repetitions of the whole mix (default 3)
  --help           print this text
`;

interface HostKind {
  name: string;
  hosts: string[];
  /** Expected action, checked once before timing so the mix measures what it claims. */
  expected: "allow" | "suspend";
  /** `decideCanonical` skips host parsing, which shows the cost of the rule look-ups alone. */
  method: "decide" | "decideCanonical";
}

/** Rules `host<i>.zone<i % 50>.example`; even ones include subdomains. */
function generateRules(count: number): EngineRule[] {
  const rules: EngineRule[] = [];
  for (let index = 0; index < count; index++) {
    rules.push({
      id: `rule-${index}`,
      domain: `host${index}.zone${index % 50}.example`,
      kind: "deny",
      severity: "suspend",
      includeSubdomains: index % 2 === 0,
      reason: "generated",
      expiresAt: null,
    });
  }
  return rules;
}

function hostKinds(ruleCount: number): HostKind[] {
  const pick = (count: number, make: (index: number) => string) =>
    Array.from({ length: count }, (_, index) => make(index));
  const even = (index: number) => ((index * 7919) % ruleCount) & ~1;
  const odd = (index: number) => (even(index) + 1 < ruleCount ? even(index) + 1 : 1);
  const zone = (index: number) => index % 50;
  return [
    {
      name: "exact hit",
      expected: "suspend",
      method: "decide",
      hosts: pick(256, (i) => `host${even(i)}.zone${zone(even(i))}.example`),
    },
    {
      name: "subdomain hit (3 labels deeper)",
      expected: "suspend",
      method: "decide",
      hosts: pick(256, (i) => `a.b.node${i}.host${even(i)}.zone${zone(even(i))}.example`),
    },
    {
      name: "miss, subdomain of an exact-only rule",
      expected: "allow",
      method: "decide",
      hosts: pick(256, (i) => `www.host${odd(i)}.zone${zone(odd(i))}.example`),
    },
    {
      name: "miss, unknown domain",
      expected: "allow",
      method: "decide",
      hosts: pick(256, (i) => `social${i}.peer${i % 17}.org`),
    },
    {
      name: "hit with upper case, trailing dot and port",
      expected: "suspend",
      method: "decide",
      hosts: pick(256, (i) => `HOST${even(i)}.Zone${zone(even(i))}.example.:8443`),
    },
    {
      name: "miss, Unicode host",
      expected: "allow",
      method: "decide",
      hosts: pick(256, (i) => `узел${i}.пример.рф`),
    },
    {
      name: "subdomain hit, decideCanonical",
      expected: "suspend",
      method: "decideCanonical",
      hosts: pick(256, (i) => `a.b.node${i}.host${even(i)}.zone${zone(even(i))}.example`),
    },
    {
      name: "miss, unknown domain, decideCanonical",
      expected: "allow",
      method: "decideCanonical",
      hosts: pick(256, (i) => `social${i}.peer${i % 17}.org`),
    },
  ];
}

function timeKind(engine: DomainPolicyEngine, kind: HostKind, decisions: number, now: Date) {
  const { hosts } = kind;
  let suspended = 0;
  const start = process.hrtime.bigint();
  for (let index = 0; index < decisions; index++) {
    const host = hosts[index % hosts.length] as string;
    const decision =
      kind.method === "decide" ? engine.decide(host, now) : engine.decideCanonical(host, now);
    if (decision.action !== "allow") suspended++;
  }
  const elapsed = Number(process.hrtime.bigint() - start);
  // The count keeps the loop's result alive, so the JIT cannot drop the calls.
  if (suspended === -1) console.log("unreachable");
  return elapsed / decisions;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      rules: { type: "string", default: "10000" },
      decisions: { type: "string", default: "1000000" },
      rounds: { type: "string", default: "3" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const ruleCount = parsePositiveInteger("rules", values.rules);
  const decisions = parsePositiveInteger("decisions", values.decisions);
  const rounds = parsePositiveInteger("rounds", values.rounds);

  const buildStart = process.hrtime.bigint();
  const engine = new DomainPolicyEngine("open", generateRules(ruleCount));
  const buildMs = Number(process.hrtime.bigint() - buildStart) / 1e6;
  const now = new Date();
  const kinds = hostKinds(ruleCount);

  for (const kind of kinds) {
    for (const host of kind.hosts) {
      const action = engine[kind.method](host, now).action;
      if (action !== kind.expected) {
        throw new Error(`${kind.name}: ${host} got ${action}, expected ${kind.expected}`);
      }
    }
  }

  console.log(`node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"})`);
  console.log(`${ruleCount} rules built in ${buildMs.toFixed(1)} ms`);
  console.log(`${decisions} decisions per kind and round, ${rounds} rounds; ns per decision:`);

  // One untimed pass warms the JIT on every kind.
  for (const kind of kinds) timeKind(engine, kind, Math.min(decisions, 100_000), now);

  const results = new Map<string, number[]>();
  for (let round = 0; round < rounds; round++) {
    for (const kind of kinds) {
      const list = results.get(kind.name) ?? [];
      list.push(timeKind(engine, kind, decisions, now));
      results.set(kind.name, list);
    }
  }
  for (const [name, values] of results) {
    const sorted = [...values].sort((a, b) => a - b);
    const low = sorted[0] ?? 0;
    const high = sorted.at(-1) ?? 0;
    console.log(`  ${name.padEnd(44)} ${low.toFixed(0)} to ${high.toFixed(0)} ns`);
  }
}

main();
