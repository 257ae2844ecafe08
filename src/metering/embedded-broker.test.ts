import mqtt, { ErrorWithSubackPacket } from "mqtt";
import { describe, expect, it } from "vitest";
import { EmbeddedMqttBroker } from "./embedded-broker.ts";

describe("EmbeddedMqttBroker", () => {
  it("delivers messages between clients", async () => {
    const broker = new EmbeddedMqttBroker({ port: 0 });
    await broker.start();
    const subscriber = await mqtt.connectAsync(broker.url.href, { protocolVersion: 4 });
    const publisher = await mqtt.connectAsync(broker.url.href, { protocolVersion: 4 });
    try {
      await subscriber.subscribeAsync("unit.example.com/+", { qos: 1 });
      const received = new Promise<string>((resolve) =>
        subscriber.once("message", (topic, payload) => resolve(`${topic} ${payload}`)),
      );
      await publisher.publishAsync("unit.example.com/node", "21.5", { qos: 1 });
      expect(await received).toBe("unit.example.com/node 21.5");
    } finally {
      await subscriber.endAsync();
      await publisher.endAsync();
      await broker.stop();
    }
  });

  it("rejects shared subscriptions in the SUBACK", async () => {
    const broker = new EmbeddedMqttBroker({ port: 0 });
    await broker.start();
    const client = await mqtt.connectAsync(broker.url.href, { protocolVersion: 4 });
    try {
      await expect(client.subscribeAsync("$share/group/+/+", { qos: 1 })).rejects.toThrow(
        ErrorWithSubackPacket,
      );
      const granted = await client.subscribeAsync("+/+", { qos: 1 });
      expect(granted.map((grant) => [grant.topic, grant.qos])).toEqual([["+/+", 1]]);
      expect(client.connected).toBe(true);
    } finally {
      await client.endAsync();
      await broker.stop();
    }
  });

  it("reports a port that is taken", async () => {
    const first = new EmbeddedMqttBroker({ port: 0 });
    await first.start();
    const second = new EmbeddedMqttBroker({ port: first.port });
    try {
      await expect(second.start()).rejects.toThrow(`127.0.0.1:${first.port}`);
    } finally {
      await first.stop();
    }
  });

  it("has no URL before it starts", () => {
    expect(() => new EmbeddedMqttBroker({ port: 0 }).url).toThrow("not started");
  });
});
