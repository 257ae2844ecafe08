/** `users ...`: a user's token balance and ledger history (`/api/v1/users/{id}/ledger`). */
import {
  type CommandGroup,
  type CommandSpec,
  idArgument,
  stringOption,
  UsageError,
} from "./commands.ts";
import { formatTable, type TableColumn } from "./output.ts";

/** Max transactions that one `users ledger` call lists, the route's max page size. */
const MAX_LEDGER_LIMIT = 500;
const DEFAULT_LEDGER_LIMIT = 20;

interface LedgerItem {
  transactionId: number;
  createdAt: string;
  kind: string;
  description: string | null;
  changes: { account: "free" | "paid"; amount: string }[];
  amount: string;
  balanceAfter: string;
}

interface UserLedger {
  userId: string;
  balance: { free: string; paid: string; total: string };
  items: LedgerItem[];
  next: string | null;
}

function changeOf(item: LedgerItem, account: "free" | "paid"): string | undefined {
  return item.changes.find((change) => change.account === account)?.amount;
}

const LEDGER_COLUMNS: TableColumn<LedgerItem>[] = [
  { header: "ID", value: (item) => item.transactionId },
  { header: "TIME", value: (item) => item.createdAt },
  { header: "KIND", value: (item) => item.kind },
  { header: "FREE", value: (item) => changeOf(item, "free") },
  { header: "PAID", value: (item) => changeOf(item, "paid") },
  { header: "AMOUNT", value: (item) => item.amount },
  { header: "BALANCE AFTER", value: (item) => item.balanceAfter },
  { header: "DESCRIPTION", value: (item) => item.description },
];

const ledger: CommandSpec = {
  name: "ledger",
  summary: "Show a user's token balance and latest ledger transactions, newest first",
  args: ["<user-id>"],
  options: {
    limit: {
      type: "string",
      value: "N",
      description: `Transactions to list, 1 to ${MAX_LEDGER_LIMIT}; default ${DEFAULT_LEDGER_LIMIT}`,
    },
  },
  details:
    "FREE and PAID are the changes of the user's free and paid accounts; BALANCE AFTER is both " +
    "together right after the transaction.",
  async run({ api }, input) {
    const userId = idArgument(input, "the Pepeunit import (docs/billing.md, section Users)");
    const limitText = stringOption(input, "limit") ?? String(DEFAULT_LEDGER_LIMIT);
    const limit = /^[0-9]{1,3}$/.test(limitText) ? Number(limitText) : 0;
    if (limit < 1 || limit > MAX_LEDGER_LIMIT) {
      throw new UsageError(
        `Invalid --limit ${JSON.stringify(limitText)}: expected a whole number from 1 to ${MAX_LEDGER_LIMIT}`,
      );
    }
    const body = (await api.request("GET", `/users/${userId}/ledger`, {
      query: { limit },
    })) as UserLedger;
    const { free, paid, total } = body.balance;
    const lines = [`Balance: ${total} tokens (free ${free}, paid ${paid})`, ""];
    lines.push(
      body.items.length === 0 ? "No transactions." : formatTable(LEDGER_COLUMNS, body.items),
    );
    if (body.next !== null) lines.push("", `Older transactions exist; raise --limit to list more.`);
    return { text: lines.join("\n"), json: body };
  },
};

export const userCommands: CommandGroup = {
  name: "users",
  summary: "Users: token balance and ledger history",
  commands: [ledger],
};
