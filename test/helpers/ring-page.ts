/**
 * The ring page's test setup, shared by the browser tests, the screenshot
 * (`npm run screenshot`) and the page benchmark: `ringroute serve` started
 * in-process on ephemeral loopback ports with a members file as its source,
 * and a fresh headless Chromium with the page open.
 */
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { type Serving, startServing } from "../../src/commands/serve.ts";
import { defaultConfig } from "../../src/config.ts";
import type { RingConfig } from "../../src/ring/ring.ts";
import { type Browser, launchBrowser } from "./browser.ts";

export interface RingPage {
  serving: Serving;
  /** http://127.0.0.1:PORT of the admin server. */
  admin: string;
  browser: Browser;
  page: Page;
  /** Rewrites the members file (atomically) with these members. */
  setMembers(members: PageMember[]): Promise<void>;
  close(): Promise<void>;
}

/** A member as the members file lists it. */
export interface PageMember {
  name: string;
  url: string;
  protocol?: "h1" | "h2c";
}

export const fakeMember = (name: string): PageMember => ({ name, url: `http://127.0.0.1:9/${name}` });

export async function openRingPage(
  members: PageMember[],
  ring: Partial<RingConfig> = {},
  viewport?: { width: number; height: number },
): Promise<RingPage> {
  const dir = await mkdtemp(join(tmpdir(), "ringroute-page-"));
  const path = join(dir, "members.json");
  let version = 0;
  const setMembers = async (list: PageMember[]) => {
    const temporary = join(dir, `members.${version++}.tmp`);
    // JSON is YAML: the file holds a list of {name, url, protocol?}.
    await writeFile(temporary, JSON.stringify(list));
    await rename(temporary, path);
  };
  await setMembers(members);
  const config = defaultConfig();
  config.listen = { host: "127.0.0.1", port: 0 };
  config.admin = { host: "127.0.0.1", port: 0 };
  Object.assign(config.ring, ring);
  config.membership = { file: { path, pollInterval: 100, settle: 50 } };
  const serving = await startServing(config);
  const admin = `http://127.0.0.1:${serving.admin.port}`;
  let browser: Browser | undefined;
  try {
    browser = await launchBrowser(viewport);
    const page = await browser.context.newPage();
    page.setDefaultTimeout(120_000);
    await page.goto(`${admin}/`);
    await page.waitForFunction(
      (checksum) => document.body.dataset.checksum === checksum,
      serving.cluster.ring.checksum,
      { timeout: 30_000 },
    );
    const opened = browser;
    return {
      serving,
      admin,
      browser: opened,
      page,
      setMembers,
      async close() {
        await opened.close();
        await serving.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await browser?.close();
    await serving.close();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** The canvas's background, where no partition is drawn. */
export const background = "#eeeeee";

/**
 * Reads the colour at the centre of every cell of the page's canvas grid, row
 * by row (partition p is cell p). Passed as source text: tsx's name helpers
 * do not exist in the page.
 */
export function readCanvas(page: Page): Promise<string[]> {
  return page.evaluate(`(() => {
    const canvas = document.querySelector("#ring");
    const { cols, rows, cell, gap } = window.ringPage.layoutOf();
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const offset = Math.floor((cell - gap) / 2);
    const cells = [];
    for (let i = 0; i < rows * cols; i++) {
      const x = (i % cols) * cell + offset;
      const y = Math.floor(i / cols) * cell + offset;
      const at = (y * canvas.width + x) * 4;
      cells.push("#" + [data[at], data[at + 1], data[at + 2]].map((v) => v.toString(16).padStart(2, "0")).join(""));
    }
    return cells;
  })()`);
}
