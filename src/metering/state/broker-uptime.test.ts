/** Broker uptime against a real Mosquitto started for this file on a free loopback port. */
import { type ChildProcess, spawn } from "node:child_process";
import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findFreePort } from "../../../test/global-setup.ts";
import { parseMosquittoUptime, watchMosquittoUptime } from "./broker-uptime.ts";

const MOSQUITTO = "/usr/sbin/mosquitto";
const available = await access(MOSQUITTO).then(
  () => true,
  () => false,
);

describe("parseMosquittoUptime", () => {
  it("reads seconds", () => {
    expect(parseMosquittoUptime("5214 seconds")).toBe(5214);
    expect(parseMosquittoUptime("garbage")).toBeUndefined();
  });
});

describe.skipIf(!available)(
  "Mosquitto uptime (needs /usr/sbin/mosquitto from the Debian package mosquitto)",
  () => {
    let broker: ChildProcess;
    let scratch: string;
    let port: number;

    beforeAll(async () => {
      scratch = await mkdtemp(path.join(tmpdir(), "broker-uptime-"));
      port = await findFreePort();
      const config = path.join(scratch, "mosquitto.conf");
      await writeFile(
        config,
        `per_listener_settings false\nallow_anonymous true\npersistence false\nuser root\nsys_interval 1\nlistener ${port} 127.0.0.1\n`,
      );
      broker = spawn(MOSQUITTO, ["-c", config], { stdio: "ignore" });
      for (let attempt = 0; attempt < 100; attempt += 1) {
        const client = await mqtt
          .connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 500 })
          .catch(() => undefined);
        if (client !== undefined) {
          await client.endAsync();
          return;
        }
        await delay(50);
      }
      throw new Error(`mosquitto did not accept connections on port ${port}`);
    });

    afterAll(async () => {
      broker?.kill("SIGTERM");
      await rm(scratch, { recursive: true, force: true });
    });

    it("reports the uptime from $SYS", async () => {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`);
      try {
        const watch = await watchMosquittoUptime(client);
        for (let attempt = 0; attempt < 100 && watch.uptime() === undefined; attempt += 1) {
          await delay(50);
        }
        expect(watch.uptime()).toBeGreaterThanOrEqual(0);
        await watch.stop();
      } finally {
        await client.endAsync();
      }
    });
  },
);
