/** `bans ...`: automatic and manual bans of remote nodes and topics (`/api/v1/policy/bans`). */
import {
  type CommandGroup,
  type CommandSpec,
  historyCommand,
  idArgument,
  listCommand,
  showCommand,
  stringOption,
  UsageError,
} from "./commands.ts";
import { formatRecord, type TableColumn } from "./output.ts";

const PATH = "/policy/bans";

interface Ban {
  id: string;
  kind: string;
  domain: string;
  topic: string | null;
  level: number;
  condition: string;
  reason: string;
  evidence: Record<string, unknown> | null;
  createdBy: string;
  startsAt: string;
  expiresAt: string | null;
  active: boolean;
  expiredAt: string | null;
  liftedAt: string | null;
  liftedBy: string | null;
  liftReason: string | null;
}

const BAN_COLUMNS: TableColumn<Ban>[] = [
  { header: "ID", value: (ban) => ban.id },
  { header: "SUBJECT", value: (ban) => ban.topic ?? ban.domain },
  { header: "LEVEL", value: (ban) => ban.level },
  { header: "CONDITION", value: (ban) => ban.condition },
  { header: "ACTIVE", value: (ban) => ban.active },
  { header: "EXPIRES", value: (ban) => ban.expiresAt ?? "never" },
];

const BAN_FIELDS: TableColumn<Ban>[] = [
  { header: "ID", value: (ban) => ban.id },
  { header: "KIND", value: (ban) => ban.kind },
  { header: "DOMAIN", value: (ban) => ban.domain },
  { header: "TOPIC", value: (ban) => ban.topic },
  { header: "LEVEL", value: (ban) => ban.level },
  { header: "CONDITION", value: (ban) => ban.condition },
  { header: "REASON", value: (ban) => ban.reason },
  { header: "EVIDENCE", value: (ban) => (ban.evidence ? JSON.stringify(ban.evidence) : null) },
  { header: "CREATED BY", value: (ban) => ban.createdBy },
  { header: "STARTS", value: (ban) => ban.startsAt },
  { header: "EXPIRES", value: (ban) => ban.expiresAt ?? "never" },
  { header: "ACTIVE", value: (ban) => ban.active },
  { header: "EXPIRED AT", value: (ban) => ban.expiredAt },
  { header: "LIFTED AT", value: (ban) => ban.liftedAt },
  { header: "LIFTED BY", value: (ban) => ban.liftedBy },
  { header: "LIFT REASON", value: (ban) => ban.liftReason },
];

function requiredReason(input: Parameters<CommandSpec["run"]>[1]): string {
  const reason = stringOption(input, "reason");
  if (!reason) throw new UsageError("Missing --reason: say why, for the audit trail");
  return reason;
}

const add: CommandSpec = {
  name: "add",
  summary: "Ban a remote node (domain) or one of its topics by hand",
  args: ["<domain>"],
  options: {
    topic: {
      type: "string",
      value: "TOPIC",
      description: "Ban only this topic, <pepeunit domain>/<unit node uuid>, of the node",
    },
    reason: {
      type: "string",
      value: "TEXT",
      description: "Why; stored with the ban",
      required: true,
    },
    until: { type: "string", value: "ISO-TIME", description: "End of the ban" },
    permanent: { type: "boolean", description: "No end; lifted only by an administrator" },
  },
  details:
    "Without --until and --permanent the ban lasts as its escalation level says: 1, 7 or 30 days, " +
    "then permanent.",
  async run({ api }, input) {
    const topic = stringOption(input, "topic");
    const ban = (await api.request("POST", PATH, {
      json: {
        kind: topic === undefined ? "domain" : "topic",
        domain: input.args[0],
        topic,
        reason: requiredReason(input),
        until: stringOption(input, "until"),
        permanent: input.options.permanent === true ? true : undefined,
      },
    })) as Ban;
    return { text: formatRecord(BAN_FIELDS, ban), json: ban };
  },
};

const lift: CommandSpec = {
  name: "lift",
  summary: "Lift an active ban now",
  args: ["<id>"],
  options: {
    reason: {
      type: "string",
      value: "TEXT",
      description: "Why; stored in the history",
      required: true,
    },
  },
  async run({ api }, input) {
    const id = idArgument(input);
    const ban = (await api.request("POST", `${PATH}/${id}/lift`, {
      json: { reason: requiredReason(input) },
    })) as Ban;
    return { text: formatRecord(BAN_FIELDS, ban), json: ban };
  },
};

const extend: CommandSpec = {
  name: "extend",
  summary: "Move the end of an active ban later, or make it permanent",
  args: ["<id>"],
  options: {
    until: {
      type: "string",
      value: "ISO-TIME",
      description: "New end, later than the current one",
    },
    permanent: { type: "boolean", description: "No end" },
    reason: {
      type: "string",
      value: "TEXT",
      description: "Why; stored in the history",
      required: true,
    },
  },
  async run({ api }, input) {
    const id = idArgument(input);
    const until = stringOption(input, "until");
    const permanent = input.options.permanent === true;
    if ((until === undefined) === !permanent) {
      throw new UsageError("Give either --until ISO-TIME or --permanent");
    }
    const ban = (await api.request("POST", `${PATH}/${id}/extend`, {
      json: { until, permanent: permanent ? true : undefined, reason: requiredReason(input) },
    })) as Ban;
    return { text: formatRecord(BAN_FIELDS, ban), json: ban };
  },
};

export const banCommands: CommandGroup = {
  name: "bans",
  summary: "Bans of remote nodes and topics, automatic or by hand, with their evidence",
  commands: [
    listCommand<Ban>({
      summary: "List bans, newest first",
      path: PATH,
      columns: BAN_COLUMNS,
      filters: {
        active: {
          type: "string",
          value: "BOOL",
          description: "true: only active; false: only ended",
        },
        kind: { type: "string", value: "KIND", description: "domain or topic" },
        domain: { type: "string", value: "HOST", description: "Only the bans of this node" },
      },
      empty: "No bans.",
    }),
    showCommand<Ban>({
      summary: "Show one ban with its evidence",
      path: (id) => `${PATH}/${id}`,
      fields: BAN_FIELDS,
    }),
    add,
    lift,
    extend,
    historyCommand({
      summary: "Show the history of a ban, newest first",
      path: (id) => `${PATH}/${id}/history`,
    }),
  ],
};
