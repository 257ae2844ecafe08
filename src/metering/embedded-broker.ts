/**
 * The embedded MQTT broker: an aedes broker inside the node's process, listening on 127.0.0.1,
 * used when `PU_NODE_MQTT_URL` is unset so that a node without external services still has a
 * broker for its Units and its tap.
 *
 * aedes 1.2 speaks MQTT 3.1 and 3.1.1 only, keeps sessions and queued QoS 1 messages in memory
 * (they do not survive a restart), and has no shared subscriptions. A `$share/<group>/<filter>`
 * subscription would be stored as a plain filter that no topic matches, so the broker rejects it
 * in the SUBACK (0x80) instead. A tap that requests one learns at once that it would see nothing.
 * It has no authentication either, which is why it listens on loopback only.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:net";
import { Aedes } from "aedes";
import { getNodeLogger } from "../logging.ts";

const logger = getNodeLogger("metering", "embedded-broker");

export interface EmbeddedBrokerOptions {
  /** TCP port on 127.0.0.1; with 0 the kernel chooses a free one. */
  port: number;
}

export class EmbeddedMqttBroker {
  readonly #requestedPort: number;
  #broker: Aedes | undefined;
  #server: Server | undefined;
  #port: number | undefined;

  constructor(options: EmbeddedBrokerOptions) {
    this.#requestedPort = options.port;
  }

  /** The port it listens on; throws before {@link start}. */
  get port(): number {
    if (this.#port === undefined) throw new Error("The embedded MQTT broker is not started");
    return this.#port;
  }

  /** `mqtt://127.0.0.1:<port>`; throws before {@link start}. */
  get url(): URL {
    return new URL(`mqtt://127.0.0.1:${this.port}`);
  }

  /** Starts listening; throws when the port is taken. */
  async start(): Promise<void> {
    if (this.#broker) throw new Error("The embedded MQTT broker is already started");
    const broker = await Aedes.createBroker();
    broker.authorizeSubscribe = (client, subscription, callback) => {
      if (subscription.topic.startsWith("$share/")) {
        logger.warning("Rejected shared subscription {filter} of {clientId}", {
          filter: subscription.topic,
          clientId: client?.id,
        });
        // A null subscription is granted as 0x80; an error would close the client instead.
        callback(null, null);
        return;
      }
      callback(null, subscription);
    };
    broker.on("clientError", (client, error) => {
      logger.debug("MQTT client {clientId} failed: {error}", { clientId: client.id, error });
    });

    const server = createServer(broker.handle);
    server.listen(this.#requestedPort, "127.0.0.1");
    try {
      await once(server, "listening");
    } catch (error) {
      broker.close();
      throw new Error(`Embedded MQTT broker cannot listen on 127.0.0.1:${this.#requestedPort}`, {
        cause: error,
      });
    }
    const address = server.address();
    this.#port = typeof address === "object" && address ? address.port : this.#requestedPort;
    this.#broker = broker;
    this.#server = server;
    logger.info("Embedded MQTT broker listening on {url}", { url: this.url.href });
  }

  /** Closes the broker and every client connection. */
  async stop(): Promise<void> {
    const broker = this.#broker;
    const server = this.#server;
    if (!broker || !server) return;
    this.#broker = undefined;
    this.#server = undefined;
    logger.info("Stopping the embedded MQTT broker on port {port}", { port: this.#port });
    // aedes closes its client connections; the server then has no sockets left and can close.
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise<void>((resolve, reject) =>
      server.close((error) => (error ? reject(error) : resolve())),
    );
    logger.info("Stopped the embedded MQTT broker");
  }
}
