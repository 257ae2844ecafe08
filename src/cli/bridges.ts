/** `bridges ...`: MQTT bridges agreed with other instances (`/api/v1/bridges`). */
import {
  type CommandGroup,
  type CommandSpec,
  idArgument,
  listCommand,
  showCommand,
  stringOption,
  UsageError,
} from "./commands.ts";
import { formatRecord, formatTable, type TableColumn } from "./output.ts";

const PATH = "/bridges";

interface BridgeRoute {
  unitNodeId: string;
  topic: string;
  qos: number;
  maxMps: number;
  banned: boolean;
}

interface Bridge {
  id: string;
  role: string;
  state: string;
  peerHost: string;
  originDomain: string;
  brokerUrl: string | null;
  endReason: string | null;
  peerSuspended: boolean;
  routes: BridgeRoute[];
  createdAt: string;
}

interface BridgeEvent {
  id: number;
  type: string;
  actor: string;
  detail: Record<string, unknown> | null;
  createdAt: string;
}

const BRIDGE_COLUMNS: TableColumn<Bridge>[] = [
  { header: "ID", value: (bridge) => bridge.id },
  { header: "ROLE", value: (bridge) => bridge.role },
  { header: "STATE", value: (bridge) => bridge.state },
  { header: "PEER", value: (bridge) => bridge.peerHost },
  { header: "ROUTES", value: (bridge) => bridge.routes.length },
];

const BRIDGE_FIELDS: TableColumn<Bridge>[] = [
  ...BRIDGE_COLUMNS.slice(0, 4),
  { header: "ORIGIN DOMAIN", value: (bridge) => bridge.originDomain },
  { header: "BROKER", value: (bridge) => bridge.brokerUrl },
  { header: "END REASON", value: (bridge) => bridge.endReason },
  { header: "PEER SUSPENDED", value: (bridge) => bridge.peerSuspended },
  {
    header: "ROUTES",
    value: (bridge) =>
      bridge.routes
        .map(
          (route) =>
            `${route.topic} qos ${route.qos} max ${route.maxMps} msg/s${route.banned ? " (banned)" : ""}`,
        )
        .join("; "),
  },
  { header: "CREATED AT", value: (bridge) => bridge.createdAt },
];

const request: CommandSpec = {
  name: "request",
  summary: "Ask another instance to export its Output UnitNodes to this broker",
  args: ["<peer-origin>", "<unit-node-id>..."],
  options: {
    qos: { type: "string", value: "0|1", description: "QoS of every route; default 1" },
    "max-mps": {
      type: "string",
      value: "N",
      description:
        "Requested limit in messages per second per route; default PU_NODE_BRIDGE_MAX_MPS",
    },
  },
  details:
    "<peer-origin> is the other node's origin, such as https://node.example.com. The UnitNodes " +
    "must be public Outputs in that instance's catalogue, which this node has after following it.",
  async run({ api }, input) {
    const [peer, ...unitNodeIds] = input.args;
    if (unitNodeIds.length === 0)
      throw new UsageError("Give at least one UnitNode id after the peer");
    const qosText = stringOption(input, "qos") ?? "1";
    if (qosText !== "0" && qosText !== "1") {
      throw new UsageError(`Invalid --qos ${JSON.stringify(qosText)}: expected 0 or 1`);
    }
    const maxMpsText = stringOption(input, "max-mps");
    const maxMps = maxMpsText === undefined ? undefined : Number(maxMpsText);
    if (maxMps !== undefined && (!Number.isInteger(maxMps) || maxMps < 1)) {
      throw new UsageError(
        `Invalid --max-mps ${JSON.stringify(maxMpsText)}: expected a whole number ≥ 1`,
      );
    }
    const bridge = (await api.request("POST", PATH, {
      json: {
        peer,
        routes: unitNodeIds.map((unitNodeId) => ({ unitNodeId, qos: Number(qosText), maxMps })),
      },
    })) as Bridge;
    return { text: formatRecord(BRIDGE_FIELDS, bridge), json: bridge };
  },
};

const end: CommandSpec = {
  name: "end",
  summary: "End a bridge; the other instance is told with Undo or Reject",
  args: ["<id>"],
  options: {
    reason: { type: "string", value: "TEXT", description: "Why; sent to the peer", required: true },
  },
  async run({ api }, input) {
    const id = idArgument(input);
    const reason = stringOption(input, "reason");
    if (!reason) throw new UsageError("Missing --reason: say why; the peer receives it");
    const bridge = (await api.request("POST", `${PATH}/${id}/end`, { json: { reason } })) as Bridge;
    return { text: formatRecord(BRIDGE_FIELDS, bridge), json: bridge };
  },
};

const EVENT_COLUMNS: TableColumn<BridgeEvent>[] = [
  { header: "TIME", value: (event) => event.createdAt },
  { header: "EVENT", value: (event) => event.type },
  { header: "ACTOR", value: (event) => event.actor },
  { header: "DETAIL", value: (event) => (event.detail ? JSON.stringify(event.detail) : "") },
];

const history: CommandSpec = {
  name: "history",
  summary: "Show the agreement steps and broker changes of a bridge, oldest first",
  args: ["<id>"],
  async run({ api }, input) {
    const body = (await api.request("GET", `${PATH}/${idArgument(input)}/history`)) as {
      items: BridgeEvent[];
    };
    return { text: formatTable(EVENT_COLUMNS, body.items), json: body.items };
  },
};

const status: CommandSpec = {
  name: "status",
  summary: "Show the last reconciliation of the local broker with the agreed bridges",
  async run({ api }) {
    const body = (await api.request("GET", `${PATH}/reconciliation`)) as Record<string, unknown>;
    const fields: TableColumn<Record<string, unknown>>[] = [
      "driver",
      "lastAttemptAt",
      "lastSuccessAt",
      "lastError",
      "appliedStateHash",
    ].map((name) => ({ header: name, value: (row) => row[name] }));
    return { text: formatRecord(fields, body), json: body };
  },
};

export const bridgeCommands: CommandGroup = {
  name: "bridges",
  summary: "MQTT bridges with other instances: requests, routes, state and history",
  commands: [
    listCommand<Bridge>({
      summary: "List bridges in both directions",
      path: PATH,
      columns: BRIDGE_COLUMNS,
      filters: {
        state: {
          type: "string",
          value: "STATE",
          description: "requested, active, rejected or cancelled",
        },
        role: { type: "string", value: "ROLE", description: "importer or exporter" },
        peerHost: { type: "string", value: "HOST", description: "Only the bridges with this node" },
      },
      empty: "No bridges.",
    }),
    showCommand<Bridge>({
      summary: "Show one bridge with its routes",
      path: (id) => `${PATH}/${id}`,
      fields: BRIDGE_FIELDS,
    }),
    request,
    end,
    history,
    status,
  ],
};
