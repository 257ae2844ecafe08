/**
 * A local fake of the Telegram Bot API, for payment tests. It follows the published Bot API
 * reference (https://core.telegram.org/bots/api, sections "Getting updates" and "Payments", and
 * the Stars guide https://core.telegram.org/bots/payments-stars) for the methods the node calls:
 * getMe, deleteWebhook, getUpdates, sendMessage, setMyCommands, getMyCommands, sendInvoice,
 * createInvoiceLink, answerPreCheckoutQuery, refundStarPayment and getStarTransactions. The real
 * service was never called while writing or running it.
 *
 * A test plays the payer with {@link FakeTelegramBotApi.pay}: the fake sends a
 * `pre_checkout_query` update, waits for the bot's answer until the deadline (10 seconds, as
 * Telegram documents), and on an `ok` answer books a Star transaction and sends the
 * `successful_payment` message. Updates reach the bot through `getUpdates` long polling.
 *
 * A test plays a user who writes to the bot with {@link FakeTelegramBotApi.sendText}, and reads
 * what the bot sent in {@link FakeTelegramBotApi.sentMessages}. A chat in `blockedChats` gets
 * Telegram's 403 "Forbidden: bot was blocked by the user" for every message the bot sends it.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { BotCommand, MessageEntity, StarTransaction, Update, User } from "grammy/types";

/** Telegram's deadline for the answer to a pre-checkout query. */
export const PRE_CHECKOUT_DEADLINE_MS = 10_000;

export interface FakeInvoice {
  payload: string;
  title: string;
  description: string;
  currency: string;
  amount: number;
  chatId: number | null;
}

export interface PaymentAttempt {
  /** Whether the bot answered the pre-checkout query before the deadline. */
  answered: boolean;
  ok: boolean;
  errorMessage: string | undefined;
  /** The `telegram_payment_charge_id` of a completed payment. */
  chargeId: string | undefined;
  /** The `successful_payment` update, for tests that deliver it again. */
  update: Update | undefined;
}

export interface PayOptions {
  payload: string;
  user: Pick<User, "id"> & Partial<User>;
  /** Overrides the invoice's amount, as a stale or tampered invoice would. */
  totalAmount?: number;
  currency?: string;
  /** Leaves `from` out of the `successful_payment` message. */
  omitFrom?: boolean;
  /** Hands the updates to this function instead of queueing them for `getUpdates`. */
  deliver?: (update: Update) => Promise<unknown>;
}

/** A Bot API error. `retryAfter` becomes `parameters.retry_after`, as in a 429 response. */
export interface FakeFailure {
  code: number;
  description: string;
  retryAfter?: number;
}

/** A message the bot sent with `sendMessage`. */
export interface SentMessage {
  chatId: number;
  messageId: number;
  text: string;
}

class ApiError extends Error {
  readonly code: number;
  readonly retryAfter: number | undefined;
  constructor(code: number, description: string, retryAfter?: number) {
    super(description);
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

interface PendingQuery {
  resolve: (answer: { ok: boolean; errorMessage: string | undefined }) => void;
  expired: boolean;
}

export class FakeTelegramBotApi {
  readonly token: string;
  readonly deadlineMs: number;
  readonly invoices = new Map<string, FakeInvoice>();
  readonly starTransactions: StarTransaction[] = [];
  /** Every call in order, with its parameters. */
  readonly calls: { method: string; params: Record<string, unknown> }[] = [];
  /** Makes every call of a method fail with this Bot API error until the entry is deleted. */
  readonly failures = new Map<string, FakeFailure>();
  /** Messages the bot sent with `sendMessage`, in order. */
  readonly sentMessages: SentMessage[] = [];
  /** Chats of users who blocked the bot: `sendMessage` to them fails with 403. */
  readonly blockedChats = new Set<number>();
  /** Milliseconds `sendMessage` waits before it responds, to widen races between senders. */
  sendMessageDelayMs = 0;
  /** The command menus set by `setMyCommands`, per `language_code` ("" for the default). */
  readonly commands = new Map<string, BotCommand[]>();
  #server: Server | undefined;
  #updates: Update[] = [];
  #nextUpdateId = 1;
  #nextMessageId = 1;
  #nextCharge = 1;
  #waiters = new Set<() => void>();
  #queries = new Map<string, PendingQuery>();

  constructor(options: { token: string; deadlineMs?: number }) {
    this.token = options.token;
    this.deadlineMs = options.deadlineMs ?? PRE_CHECKOUT_DEADLINE_MS;
  }

  /** The `apiRoot` to give grammY, such as `http://127.0.0.1:40123`. */
  get apiRoot(): string {
    const address = this.#server?.address() as AddressInfo;
    return `http://127.0.0.1:${address.port}`;
  }

  async start(): Promise<void> {
    this.#server = createServer((request, response) => {
      void this.#handle(request, response);
    });
    this.#server.listen(0, "127.0.0.1");
    await once(this.#server, "listening");
  }

  async stop(): Promise<void> {
    for (const wake of this.#waiters) wake();
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }

  /** Queues an update for `getUpdates`, such as the same update a second time. */
  deliver(update: Update): void {
    this.#updates.push(update);
    for (const wake of this.#waiters) wake();
  }

  /**
   * Plays a user who sends `text` in the private chat with the bot (chat id = user id). A
   * leading `/command` gets a `bot_command` entity, as Telegram marks it.
   */
  sendText(user: Pick<User, "id"> & Partial<User>, text: string): Update {
    const from: User = { is_bot: false, first_name: "User", ...user };
    const command = /^\/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?/.exec(text);
    const entities: MessageEntity[] =
      command === null ? [] : [{ type: "bot_command", offset: 0, length: command[0].length }];
    const update = {
      update_id: this.#nextUpdateId++,
      message: {
        message_id: this.#nextMessageId++,
        date: Math.floor(Date.now() / 1000),
        chat: { id: from.id, type: "private", first_name: from.first_name },
        from,
        text,
        ...(entities.length > 0 ? { entities } : {}),
      },
    } as Update;
    this.deliver(update);
    return update;
  }

  /** Returns the texts the bot sent to `chatId`, in order. */
  textsTo(chatId: number): string[] {
    return this.sentMessages
      .filter((message) => message.chatId === chatId)
      .map((message) => message.text);
  }

  /** Plays a payer who opens the invoice with `payload` and pays it. */
  async pay(options: PayOptions): Promise<PaymentAttempt> {
    const invoice = this.invoices.get(options.payload);
    const user: User = { is_bot: false, first_name: "Payer", ...options.user };
    const currency = options.currency ?? invoice?.currency ?? "XTR";
    const totalAmount = options.totalAmount ?? invoice?.amount ?? 1;
    const queryId = `query-${this.#nextUpdateId}`;
    const deliver = (update: Update) => {
      if (options.deliver === undefined) this.deliver(update);
      else void options.deliver(update).catch(() => undefined);
    };

    const answer = new Promise<{ ok: boolean; errorMessage: string | undefined } | undefined>(
      (resolve) => {
        const pending: PendingQuery = { resolve, expired: false };
        this.#queries.set(queryId, pending);
        setTimeout(() => {
          pending.expired = true;
          resolve(undefined);
        }, this.deadlineMs).unref();
      },
    );
    deliver({
      update_id: this.#nextUpdateId++,
      pre_checkout_query: {
        id: queryId,
        from: user,
        currency,
        total_amount: totalAmount,
        invoice_payload: options.payload,
      },
    });
    const answered = await answer;
    if (answered === undefined || !answered.ok) {
      return {
        answered: answered !== undefined,
        ok: false,
        errorMessage: answered?.errorMessage,
        chargeId: undefined,
        update: undefined,
      };
    }

    const chargeId = `stxFakeCharge${this.#nextCharge++}`;
    const date = Math.floor(Date.now() / 1000);
    this.starTransactions.push({
      id: chargeId,
      amount: totalAmount,
      date,
      source: {
        type: "user",
        transaction_type: "invoice_payment",
        user,
        invoice_payload: options.payload,
      },
    });
    const message = {
      message_id: this.#nextMessageId++,
      date,
      chat: { id: user.id, type: "private", first_name: user.first_name },
      ...(options.omitFrom === true ? {} : { from: user }),
      successful_payment: {
        currency,
        total_amount: totalAmount,
        invoice_payload: options.payload,
        telegram_payment_charge_id: chargeId,
        provider_payment_charge_id: "",
      },
    } as Update["message"];
    const update: Update = { update_id: this.#nextUpdateId++, message };
    deliver(update);
    return { answered: true, ok: true, errorMessage: undefined, chargeId, update };
  }

  /** Books a payment that the bot never hears about, as if the update had been lost. */
  bookLostPayment(options: { payload: string; userId: number; amount: number }): string {
    const chargeId = `stxFakeCharge${this.#nextCharge++}`;
    this.starTransactions.push({
      id: chargeId,
      amount: options.amount,
      date: Math.floor(Date.now() / 1000),
      source: {
        type: "user",
        transaction_type: "invoice_payment",
        user: { id: options.userId, is_bot: false, first_name: "Payer" },
        invoice_payload: options.payload,
      },
    });
    return chargeId;
  }

  /**
   * Serves one Bot API request in the calling process, without a socket. Unit tests pass it to
   * grammY as its `fetch`, with any `apiRoot` such as `http://telegram.invalid`.
   */
  readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    // grammY passes the signal of its abort-controller polyfill, which Request rejects; a
    // request served in process has nothing to abort anyway.
    const request = new Request(input, { ...init, signal: undefined });
    const reply = await this.#respond(new URL(request.url).pathname, await request.text());
    return new Response(JSON.stringify(reply.body), {
      status: reply.status,
      headers: { "content-type": "application/json" },
    });
  };

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const reply = await this.#respond(new URL(request.url ?? "/", "http://x").pathname, text);
    response.writeHead(reply.status, { "content-type": "application/json" });
    response.end(JSON.stringify(reply.body));
  }

  async #respond(pathname: string, text: string): Promise<{ status: number; body: unknown }> {
    const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(pathname);
    try {
      if (match === null) throw new ApiError(404, "Not Found");
      if (match[1] !== this.token) throw new ApiError(401, "Unauthorized");
      const method = match[2] as string;
      const params = (text === "" ? {} : JSON.parse(text)) as Record<string, unknown>;
      this.calls.push({ method, params });
      const failure = this.failures.get(method);
      if (failure !== undefined) {
        throw new ApiError(failure.code, failure.description, failure.retryAfter);
      }
      return { status: 200, body: { ok: true, result: await this.#call(method, params) } };
    } catch (error) {
      const code = error instanceof ApiError ? error.code : 500;
      const retryAfter = error instanceof ApiError ? error.retryAfter : undefined;
      return {
        status: code,
        body: {
          ok: false,
          error_code: code,
          description: (error as Error).message,
          ...(retryAfter === undefined ? {} : { parameters: { retry_after: retryAfter } }),
        },
      };
    }
  }

  async #call(method: string, params: Record<string, unknown>): Promise<unknown> {
    switch (method) {
      case "getMe":
        return { id: 1000, is_bot: true, first_name: "Fake payments bot", username: "fake_bot" };
      case "deleteWebhook":
        return true;
      case "getUpdates":
        return await this.#getUpdates(params);
      case "sendMessage":
        if (this.sendMessageDelayMs > 0) {
          await new Promise((resolve) => setTimeout(resolve, this.sendMessageDelayMs));
        }
        return this.#sendMessage(params);
      case "setMyCommands": {
        const commands = params.commands as BotCommand[] | undefined;
        if (!Array.isArray(commands) || commands.length > 100) {
          throw new ApiError(400, "Bad Request: commands must be a list of at most 100 commands");
        }
        for (const { command, description } of commands) {
          if (!/^[a-z0-9_]{1,32}$/.test(command)) {
            throw new ApiError(400, "Bad Request: BOT_COMMAND_INVALID");
          }
          if (description.length < 1 || description.length > 256) {
            throw new ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID");
          }
        }
        this.commands.set(String(params.language_code ?? ""), commands);
        return true;
      }
      case "getMyCommands":
        return this.commands.get(String(params.language_code ?? "")) ?? [];
      case "sendInvoice": {
        const invoice = this.#checkInvoice(params);
        const chatId = Number(params.chat_id);
        this.invoices.set(invoice.payload, { ...invoice, chatId });
        return {
          message_id: this.#nextMessageId++,
          date: Math.floor(Date.now() / 1000),
          chat: { id: chatId, type: "private", first_name: "Payer" },
          invoice: {
            title: invoice.title,
            description: invoice.description,
            start_parameter: "",
            currency: invoice.currency,
            total_amount: invoice.amount,
          },
        };
      }
      case "createInvoiceLink": {
        const invoice = this.#checkInvoice(params);
        this.invoices.set(invoice.payload, { ...invoice, chatId: null });
        // Never requested; the test only reads it back.
        return `https://t.me/$fake-invoice-${this.invoices.size}`;
      }
      case "answerPreCheckoutQuery":
        return this.#answerPreCheckoutQuery(params);
      case "refundStarPayment":
        return this.#refund(params);
      case "getStarTransactions": {
        const offset = Number(params.offset ?? 0);
        const limit = Number(params.limit ?? 100);
        if (limit < 1 || limit > 100) throw new ApiError(400, "Bad Request: invalid limit");
        return { transactions: this.starTransactions.slice(offset, offset + limit) };
      }
      default:
        throw new ApiError(404, "Not Found: method not found");
    }
  }

  async #getUpdates(params: Record<string, unknown>): Promise<Update[]> {
    const offset = Number(params.offset ?? 0);
    const limit = Number(params.limit ?? 100);
    const timeoutSeconds = Number(params.timeout ?? 0);
    // Updates below the offset are confirmed and never returned again.
    this.#updates = this.#updates.filter((update) => update.update_id >= offset);
    if (this.#updates.length === 0 && timeoutSeconds > 0) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.#waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, timeoutSeconds * 1000);
        this.#waiters.add(wake);
      });
    }
    return this.#updates.slice(0, limit);
  }

  #sendMessage(params: Record<string, unknown>): unknown {
    const chatId = Number(params.chat_id);
    const text = String(params.text ?? "");
    if (!Number.isSafeInteger(chatId)) throw new ApiError(400, "Bad Request: chat not found");
    if (text.trim().length === 0) throw new ApiError(400, "Bad Request: message text is empty");
    if (text.length > 4096) throw new ApiError(400, "Bad Request: message is too long");
    if (this.blockedChats.has(chatId)) {
      throw new ApiError(403, "Forbidden: bot was blocked by the user");
    }
    const messageId = this.#nextMessageId++;
    this.sentMessages.push({ chatId, messageId, text });
    return {
      message_id: messageId,
      date: Math.floor(Date.now() / 1000),
      chat: { id: chatId, type: "private", first_name: "User" },
      text,
    };
  }

  #checkInvoice(params: Record<string, unknown>): Omit<FakeInvoice, "chatId"> {
    const bad = (reason: string) => new ApiError(400, `Bad Request: ${reason}`);
    const payload = String(params.payload ?? "");
    const payloadBytes = Buffer.byteLength(payload);
    if (payloadBytes < 1 || payloadBytes > 128) throw bad("invoice payload must be 1-128 bytes");
    const title = String(params.title ?? "");
    if (title.length < 1 || title.length > 32) throw bad("title must be 1-32 characters");
    const description = String(params.description ?? "");
    if (description.length < 1 || description.length > 255) {
      throw bad("description must be 1-255 characters");
    }
    if (params.currency !== "XTR") throw bad("only XTR invoices are supported by this fake");
    if (params.provider_token !== undefined && params.provider_token !== "") {
      throw bad("provider_token must be empty for payments in Telegram Stars");
    }
    const prices = params.prices as { label: string; amount: number }[] | undefined;
    if (!Array.isArray(prices) || prices.length !== 1) {
      throw bad("payments in Telegram Stars must have exactly one price");
    }
    const amount = (prices[0] as { amount: number }).amount;
    if (!Number.isInteger(amount) || amount < 1) throw bad("the price must be whole Stars");
    return { payload, title, description, currency: "XTR", amount };
  }

  #answerPreCheckoutQuery(params: Record<string, unknown>): true {
    const id = String(params.pre_checkout_query_id);
    const pending = this.#queries.get(id);
    if (pending === undefined || pending.expired) {
      throw new ApiError(
        400,
        "Bad Request: query is too old and response timeout expired or query ID is invalid",
      );
    }
    const ok = params.ok === true;
    const errorMessage = params.error_message as string | undefined;
    if (!ok && (errorMessage === undefined || errorMessage === "")) {
      throw new ApiError(400, "Bad Request: error_message is required when ok is false");
    }
    this.#queries.delete(id);
    pending.resolve({ ok, errorMessage });
    return true;
  }

  #refund(params: Record<string, unknown>): true {
    const chargeId = String(params.telegram_payment_charge_id);
    const userId = Number(params.user_id);
    const payment = this.starTransactions.find(
      (transaction) => transaction.id === chargeId && transaction.source !== undefined,
    );
    if (payment === undefined) throw new ApiError(400, "Bad Request: CHARGE_NOT_FOUND");
    const payer = payment.source as { type: "user"; user: User };
    if (payer.user.id !== userId) throw new ApiError(400, "Bad Request: USER_ID_INVALID");
    const refunded = this.starTransactions.some(
      (transaction) => transaction.id === chargeId && transaction.receiver !== undefined,
    );
    if (refunded) throw new ApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED");
    this.starTransactions.push({
      id: chargeId,
      amount: payment.amount,
      date: Math.floor(Date.now() / 1000),
      receiver: { type: "user", transaction_type: "invoice_payment", user: payer.user },
    });
    return true;
  }
}
