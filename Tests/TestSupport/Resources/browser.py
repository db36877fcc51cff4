#!/usr/bin/python3
"""Drives a headless Chromium through the DevTools protocol, for the web console's tests.

Reads a JSON list of steps on stdin and prints a JSON list of results, one per step:
  {"go": URL}                       load URL; result: the final URL
  {"eval": JS}                      evaluate JS in the page; result: its value
  {"submit": JS}                    evaluate JS that submits a form or clicks; wait for the next load
  {"screenshot": PATH}              write a PNG of the page (1280 wide, the page's height)
Chromium runs with a throwaway profile and is killed at the end, whatever happens.
Exits 1 with a message on stderr when a step fails or takes longer than 20 s.
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="tollgate-chromium-")
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--disable-sync", "--hide-scrollbars",
             "--user-data-dir=" + self.profile, "--remote-debugging-port=0", "--remote-allow-origins=*",
             "--window-size=1280,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if time.time() > deadline or self.process.poll() is not None:
                raise RuntimeError("chromium did not start")
            time.sleep(0.05)
        port = open(port_file).read().split()[0]
        pages = []
        while not pages:
            targets = json.loads(urllib.request.urlopen("http://127.0.0.1:%s/json" % port, timeout=10).read())
            pages = [t for t in targets if t.get("type") == "page"]
            if not pages:
                time.sleep(0.05)
        self.socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=20, suppress_origin=True)
        self.next_id = 0
        self.events = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError("%s: %s" % (method, message["error"]))
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_load(self):
        deadline = time.time() + 20
        while time.time() < deadline:
            for i, event in enumerate(self.events):
                if event["method"] == "Page.loadEventFired":
                    del self.events[: i + 1]
                    return
            self.events.append(json.loads(self.socket.recv()))
        raise RuntimeError("the page did not load within 20 s")

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError("script failed: %s" % result["exceptionDetails"].get("text"))
        return result.get("result", {}).get("value")

    def close(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def main():
    steps = json.load(sys.stdin)
    browser = Browser()
    results = []
    try:
        for step in steps:
            if "go" in step:
                browser.events.clear()
                browser.call("Page.navigate", url=step["go"])
                browser.wait_load()
                results.append(browser.evaluate("location.href"))
            elif "eval" in step:
                results.append(browser.evaluate(step["eval"]))
            elif "submit" in step:
                browser.events.clear()
                browser.evaluate(step["submit"])
                browser.wait_load()
                results.append(browser.evaluate("location.href"))
            elif "screenshot" in step:
                height = browser.evaluate("Math.max(document.body.scrollHeight, 300)")
                browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=int(height), deviceScaleFactor=1, mobile=False)
                shot = browser.call("Page.captureScreenshot", format="png")
                with open(step["screenshot"], "wb") as f:
                    f.write(base64.b64decode(shot["data"]))
                results.append(step["screenshot"])
            else:
                raise RuntimeError("unknown step %r" % step)
    except Exception as error:  # reported to the test, which shows it
        print("browser: %s (after %d steps)" % (error, len(results)), file=sys.stderr)
        browser.close()
        sys.exit(1)
    browser.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
