/**
 * Watches the rate of every imported bridge topic against the limit agreed for it. The tap hands
 * each message to {@link BridgeTrafficMonitor.observe}; once a second the monitor compares the
 * messages of the last `windowSeconds` with `maxMps × windowSeconds` and reports a topic over its
 * limit once per window. The report becomes a topic ban (see `src/policy/bans.ts`), and the
 * reconciler then stops bridging that topic.
 *
 * NOTE: the monitor counts what its own tap receives. Several taps in one shared-subscription
 * group each see part of the stream, so each compares only its share with the whole limit.
 */
import type { DatabaseLike } from "../db/client.ts";
import { getNodeLogger } from "../logging.ts";
import { listActiveBridges } from "./store.ts";

const logger = getNodeLogger("bridges", "monitor");

export interface BridgedRouteLimit {
  bridgeId: string;
  peerHost: string;
  topic: string;
  unitNodeId: string;
  maxMps: number;
}

/** The measurement of a topic over its limit, stored as the ban's evidence. */
export interface BridgeRateEvidence {
  bridgeId: string;
  topic: string;
  messages: number;
  windowSeconds: number;
  measuredMps: number;
  maxMps: number;
  windowStart: string;
  windowEnd: string;
}

export interface BridgeRateViolation {
  peerHost: string;
  topic: string;
  evidence: BridgeRateEvidence;
}

export interface BridgeTrafficMonitorOptions {
  windowSeconds: number;
  /** Called once per topic and window over the limit; failures are logged, not thrown. */
  report: (violation: BridgeRateViolation) => Promise<void>;
}

/** Per-second message counts of one topic, in a ring of `windowSeconds` slots. */
class SecondRing {
  readonly #counts: Uint32Array;
  readonly #seconds: Float64Array;

  constructor(size: number) {
    this.#counts = new Uint32Array(size);
    this.#seconds = new Float64Array(size).fill(-1);
  }

  add(second: number): void {
    const slot = second % this.#counts.length;
    if (this.#seconds[slot] !== second) {
      this.#seconds[slot] = second;
      this.#counts[slot] = 0;
    }
    this.#counts[slot] = (this.#counts[slot] ?? 0) + 1;
  }

  /** Messages in the seconds `(lastSecond - size, lastSecond]`. */
  sum(lastSecond: number): number {
    const size = this.#counts.length;
    let total = 0;
    for (let slot = 0; slot < size; slot++) {
      const second = this.#seconds[slot] ?? -1;
      if (second > lastSecond - size && second <= lastSecond) total += this.#counts[slot] ?? 0;
    }
    return total;
  }

  clear(): void {
    this.#seconds.fill(-1);
  }
}

export class BridgeTrafficMonitor {
  readonly #windowSeconds: number;
  readonly #report: BridgeTrafficMonitorOptions["report"];
  #limits = new Map<string, BridgedRouteLimit>();
  readonly #rings = new Map<string, SecondRing>();
  /** Topic → the second until which it is not reported again. */
  readonly #quietUntil = new Map<string, number>();

  constructor(options: BridgeTrafficMonitorOptions) {
    if (!Number.isInteger(options.windowSeconds) || options.windowSeconds < 1) {
      throw new Error(`Invalid rate window ${options.windowSeconds}: expected whole seconds ≥ 1`);
    }
    this.#windowSeconds = options.windowSeconds;
    this.#report = options.report;
  }

  /** Replaces the watched routes; counts of topics no longer watched are dropped. */
  setLimits(limits: readonly BridgedRouteLimit[]): void {
    const next = new Map<string, BridgedRouteLimit>();
    for (const limit of limits) {
      const existing = next.get(limit.topic);
      // Two bridges may import one topic; the stricter limit applies.
      if (!existing || limit.maxMps < existing.maxMps) next.set(limit.topic, limit);
    }
    for (const topic of this.#rings.keys()) {
      if (!next.has(topic)) this.#rings.delete(topic);
    }
    this.#limits = next;
  }

  get watchedTopics(): number {
    return this.#limits.size;
  }

  /** Counts one message; a cheap map look-up for topics that are not bridged. */
  observe(topic: string, nowMs: number): void {
    if (!this.#limits.has(topic)) return;
    let ring = this.#rings.get(topic);
    if (!ring) {
      ring = new SecondRing(this.#windowSeconds);
      this.#rings.set(topic, ring);
    }
    ring.add(Math.floor(nowMs / 1000));
  }

  /** Compares every watched topic with its limit and reports those over it. */
  async check(nowMs: number): Promise<BridgeRateViolation[]> {
    const second = Math.floor(nowMs / 1000);
    const violations: BridgeRateViolation[] = [];
    for (const [topic, ring] of this.#rings) {
      const limit = this.#limits.get(topic);
      if (!limit) continue;
      if ((this.#quietUntil.get(topic) ?? -1) > second) continue;
      const messages = ring.sum(second);
      if (messages <= limit.maxMps * this.#windowSeconds) continue;
      const evidence: BridgeRateEvidence = {
        bridgeId: limit.bridgeId,
        topic,
        messages,
        windowSeconds: this.#windowSeconds,
        measuredMps: Math.round((messages / this.#windowSeconds) * 100) / 100,
        maxMps: limit.maxMps,
        windowStart: new Date((second - this.#windowSeconds + 1) * 1000).toISOString(),
        windowEnd: new Date((second + 1) * 1000).toISOString(),
      };
      violations.push({ peerHost: limit.peerHost, topic, evidence });
      ring.clear();
      this.#quietUntil.set(topic, second + this.#windowSeconds);
    }
    for (const violation of violations) {
      logger.warning(
        "Bridged topic {topic} from {peerHost} ran at {measuredMps} msg/s over {windowSeconds} s; the agreed limit is {maxMps}",
        { ...violation.evidence, peerHost: violation.peerHost },
      );
      try {
        await this.#report(violation);
      } catch (error) {
        logger.error("Recording the rate violation of {topic} failed: {error}", {
          topic: violation.topic,
          error,
        });
      }
    }
    return violations;
  }
}

/** Loads the routes of every active bridge this instance imports, as the monitor watches them. */
export async function loadImportedRouteLimits(db: DatabaseLike): Promise<BridgedRouteLimit[]> {
  const active = await listActiveBridges(db);
  return active
    .filter((bridge) => bridge.role === "importer")
    .flatMap((bridge) =>
      bridge.routes.map((route) => ({
        bridgeId: bridge.id,
        peerHost: bridge.peerHost,
        topic: route.topic,
        unitNodeId: route.unitNodeId,
        maxMps: route.maxMps,
      })),
    );
}
