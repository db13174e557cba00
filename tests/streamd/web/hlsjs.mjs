// The browser driver of tests/streamd/hlsjs.sh: opens the test page
// (hlsjs.html, whose ?src= names the playlist) in the system's headless
// Chromium through puppeteer-core, waits for the page's report
// (window.hlsjsReport) and prints it as one line of JSON on stdout.  The
// page's console and errors go to stderr, for a failing test's log.
//
// Usage: node hlsjs.mjs PAGE_URL [TIMEOUT_SECONDS]
// Environment: CHROMIUM (default /usr/bin/chromium).
// Exit status: 0 with a report (even one that says hls.js failed), 1
// when there is none within the timeout or the browser would not start.
import puppeteer from "puppeteer-core";

const [pageUrl, timeoutArg] = process.argv.slice(2);
if (!pageUrl) {
	console.error("usage: node hlsjs.mjs PAGE_URL [TIMEOUT_SECONDS]");
	process.exit(2);
}
const timeoutMs = Number(timeoutArg || 60) * 1000;

// The tests run as root, where Chromium's sandbox cannot start; nothing
// but the test's own pages is loaded.  Autoplay without a gesture and
// muted audio: the page starts the video itself, and no sound device.
const browser = await puppeteer.launch({
	executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
	headless: true,
	args: [
		"--no-sandbox",
		"--autoplay-policy=no-user-gesture-required",
		"--mute-audio",
		"--disable-dev-shm-usage",
		"--no-first-run",
		"--disable-background-networking",
		"--disable-component-update",
	],
});
let status = 1;
try {
	const page = await browser.newPage();
	page.on("console", (m) => console.error(`page ${m.type()}: ${m.text()}`));
	page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
	page.on("requestfailed", (r) =>
		console.error(`request failed: ${r.url()}: ${r.failure()?.errorText}`));
	await page.goto(pageUrl, { waitUntil: "load", timeout: timeoutMs });
	await page.waitForFunction(() => window.hlsjsReport !== undefined,
		{ timeout: timeoutMs, polling: 100 });
	const report = await page.evaluate(() => window.hlsjsReport);
	process.stdout.write(JSON.stringify(report) + "\n");
	status = 0;
} catch (e) {
	console.error(`hlsjs.mjs: ${e.message}`);
} finally {
	await browser.close();
}
process.exit(status);
