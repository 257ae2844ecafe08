/**
 * Broker-wide figures from the EMQX management API: message and byte totals as per-interval
 * deltas, and the broker's uptime.
 */
import type { EmqxClient, EmqxNode } from "./client.ts";
import { counterDelta } from "./counters.ts";

/** The global counters the meter follows, by their EMQX names. */
export const BROKER_TOTAL_KEYS = {
  messagesReceived: "messages.received",
  messagesSent: "messages.sent",
  bytesReceived: "bytes.received",
  bytesSent: "bytes.sent",
} as const;

export type BrokerTotals = Record<keyof typeof BROKER_TOTAL_KEYS, number>;

/** Broker traffic between two readings, summed over the cluster's nodes. */
export interface BrokerTotalsDelta extends BrokerTotals {
  from: Date;
  to: Date;
  /** Nodes whose counters went down since the previous reading, read as restarts. */
  restartedNodes: string[];
}

interface NodeReading {
  at: Date;
  totals: BrokerTotals;
}

/**
 * Reads `messages.received`, `messages.sent`, `bytes.received` and `bytes.sent` per node and
 * returns what changed since the previous call. Deltas are taken per node, so a restart of one
 * node of a cluster is detected on that node alone. The new values of that node are its delta.
 */
export class BrokerTotalsMeter {
  readonly #client: Pick<EmqxClient, "getMetricsByNode">;
  readonly #now: () => Date;
  readonly #previous = new Map<string, NodeReading>();

  constructor(client: Pick<EmqxClient, "getMetricsByNode">, now: () => Date = () => new Date()) {
    this.#client = client;
    this.#now = now;
  }

  /**
   * Returns the totals since the previous reading, or undefined on the first call, which only
   * records where the counters stand. A node seen for the first time (it joined the cluster)
   * only records its baseline too. `from` is the earliest previous reading among the nodes.
   */
  async read(): Promise<BrokerTotalsDelta | undefined> {
    const byNode = await this.#client.getMetricsByNode();
    const at = this.#now();
    const delta: BrokerTotals = {
      messagesReceived: 0,
      messagesSent: 0,
      bytesReceived: 0,
      bytesSent: 0,
    };
    const restartedNodes: string[] = [];
    let from: Date | undefined;
    for (const [node, values] of byNode) {
      const totals = totalsOf(values);
      const previous = this.#previous.get(node);
      this.#previous.set(node, { at, totals });
      if (previous === undefined) continue;

      if (from === undefined || previous.at < from) from = previous.at;
      let restarted = false;
      for (const key of Object.keys(delta) as (keyof BrokerTotals)[]) {
        if (totals[key] < previous.totals[key]) restarted = true;
        delta[key] += counterDelta(previous.totals[key], totals[key]);
      }
      if (restarted) restartedNodes.push(node);
    }
    for (const node of this.#previous.keys()) {
      if (!byNode.has(node)) this.#previous.delete(node);
    }
    if (from === undefined) return undefined;
    return { ...delta, from, to: at, restartedNodes };
  }
}

function totalsOf(values: Record<string, number>): BrokerTotals {
  return {
    messagesReceived: values[BROKER_TOTAL_KEYS.messagesReceived] ?? 0,
    messagesSent: values[BROKER_TOTAL_KEYS.messagesSent] ?? 0,
    bytesReceived: values[BROKER_TOTAL_KEYS.bytesReceived] ?? 0,
    bytesSent: values[BROKER_TOTAL_KEYS.bytesSent] ?? 0,
  };
}

export interface BrokerUptime {
  /**
   * Seconds since the longest-running node that is still running started: the cluster has
   * served clients at least that long. Undefined when no node is running.
   */
  uptimeSeconds: number | undefined;
  nodes: EmqxNode[];
}

/**
 * Reads the broker's uptime. EMQX 5.8 reports uptime only per node in `GET /api/v5/nodes`
 * (milliseconds); `/stats` and `/metrics` carry none.
 */
export async function readBrokerUptime(
  client: Pick<EmqxClient, "listNodes">,
): Promise<BrokerUptime> {
  const nodes = await client.listNodes();
  let uptimeMs: number | undefined;
  for (const node of nodes) {
    if (node.status !== "running") continue;
    uptimeMs = Math.max(uptimeMs ?? 0, node.uptimeMs);
  }
  return { uptimeSeconds: uptimeMs === undefined ? undefined : Math.floor(uptimeMs / 1000), nodes };
}
