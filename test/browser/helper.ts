import { existsSync } from 'node:fs';
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildTestApp, type Teardown, type TestContext } from '../helper.js';

/** Debian's Chromium (`apt-get install -y chromium`; .ci/run installs it). */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Why the browser tests cannot run here, or undefined when they can. In CI a missing
 * Chromium is a failure, not a skip: CI installs it.
 */
export function chromiumMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  return `${CHROMIUM} is not installed (apt-get install -y chromium)`;
}

/** Root needs --no-sandbox; the rest keep Chromium from reaching for the (closed) network at start. */
export async function launchChromium(t: Teardown): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  t.teardown(() => browser.close());
  return browser;
}

/** A port nobody listens on right now. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * The app on a fresh database, listening on a real port, with BASE_URL set to that
 * address so that the OpenAPI document's server, and so Swagger UI's Execute, points at it.
 */
export async function listeningApp(t: TestContext): Promise<{ app: FastifyInstance; base: string; token?: string }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const { app, token } = await buildTestApp(t, { config: { baseUrl: base } });
    try {
      await app.listen({ port, host: '127.0.0.1' });
      return { app, base, token };
    } catch (err) {
      // Someone took the port between the probe and the listen: try another.
      if ((err as { code?: string }).code !== 'EADDRINUSE' || attempt >= 3) throw err;
    }
  }
}

/** Resolves when the page's main thread answers within `ms`, rejects when it does not. */
export async function responsive(page: Page, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the page did not answer within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([page.evaluate(() => 1), late]);
  } finally {
    clearTimeout(timer);
  }
}
