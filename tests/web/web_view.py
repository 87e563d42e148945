#!/usr/bin/python3
"""Drives weft's web view in headless Chromium (Debian's chromium, chromium-driver and
python3-selenium), run by tests/tests/web.rs inside the daemon's host namespace:

  web_view.py --url http://127.0.0.1:PORT/ --out DIR --port PORT_NAME
      --network NAME... --endpoint NAME... --ping 'ip netns exec NS ping -c 10 -i 0.2 IP'

It checks that the page shows the networks and endpoints, that a port's counters and
rates change during a ping, that Trace streams the ping's frames, and that the pcap
button downloads a capture (DIR/downloads/*.pcap); it saves DIR/web-view.png and prints
one line `RESULT {json}` for the Rust test. Any failed check exits non-zero with a message.
The browser is quit in all cases.
"""
import argparse
import glob
import json
import os
import shlex
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def fail(msg):
    raise AssertionError(msg)


def wait_for(what, cond, timeout=15.0, step=0.2):
    """Polls cond() until it returns something truthy; fails naming `what` after timeout."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = cond()
            if last:
                return last
        except Exception as e:  # the page may be re-rendering the element
            last = e
        time.sleep(step)
    fail(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def browser(out):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1440,900", "--no-first-run", "--disable-extensions",
              f"--user-data-dir={out}/profile"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    opts.add_experimental_option("prefs", {
        "download.default_directory": f"{out}/downloads",
        "download.prompt_for_download": False,
    })
    service = Service(executable_path="/usr/bin/chromedriver", log_path=f"{out}/chromedriver.log")
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(20)
    # Headless Chromium downloads only where it is told to.
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": f"{out}/downloads"})
    return driver


def cell_value(driver, port, cls):
    td = driver.find_element(By.CSS_SELECTOR, f'#ports tr[data-port="{port}"] td.{cls}')
    return float(td.get_attribute("data-value") or 0)


def check_topology(driver, networks, endpoints):
    def shown():
        svg = driver.find_element(By.CSS_SELECTOR, "#topology svg")
        text = svg.text if svg.text else driver.execute_script("return arguments[0].textContent", svg)
        missing = [n for n in networks + endpoints if n not in text]
        return not missing and text
    text = wait_for(f"the topology to show {networks} and {endpoints}", shown)
    for e in endpoints:
        wait_for(f"a ports row for {e}",
                 lambda: driver.find_elements(By.CSS_SELECTOR, f'#ports tr[data-port="{e}"]'))
    return text


def check_link_state(driver, expected):
    """Each PORT=TEXT: the port's Link cell shows TEXT (its link state or impairment)."""
    seen = {}
    for item in expected:
        port, want = item.split("=", 1)
        sel = f'#ports tr[data-port="{port}"] td.link'
        seen[port] = wait_for(f"{port}'s link cell to show {want!r}",
                              lambda: want in (t := driver.find_element(By.CSS_SELECTOR, sel).text) and t)
    return seen


def check_counters(driver, port, ping):
    before = cell_value(driver, port, "rx-packets")
    proc = subprocess.Popen(ping, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0.0
    try:
        deadline = time.time() + 15
        while proc.poll() is None and time.time() < deadline:
            peak = max(peak, cell_value(driver, port, "rx-pps"))
            time.sleep(0.25)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if proc.returncode != 0:
        fail(f"{ping} failed: {proc.stderr.read().decode()}")
    after = wait_for(f"{port}'s RX packets to grow past {before}",
                     lambda: (v := cell_value(driver, port, "rx-packets")) >= before + 5 and v)
    if peak <= 0:
        fail(f"{port}'s RX pkt/s never rose above 0 during the ping")
    return before, after, peak


def check_trace(driver, port, ping):
    driver.find_element(By.CSS_SELECTOR, f'button.trace[data-port="{port}"]').click()
    wait_for("the trace to start streaming",
             lambda: "streaming" in driver.find_element(By.ID, "trace-state").text)
    subprocess.run(ping, check=True, stdout=subprocess.DEVNULL, timeout=30)
    out = wait_for("ICMP frames in the trace",
                   lambda: (t := driver.find_element(By.ID, "trace-out").text)
                   and "ICMP" in t and "output" in t and t)
    driver.find_element(By.ID, "trace-stop").click()
    wait_for("the trace to stop", lambda: driver.find_element(By.ID, "trace-state").text == "stopped")
    return out


def check_capture(driver, port, ping, out):
    count = driver.find_element(By.ID, "cap-count")
    count.clear()
    count.send_keys("8")
    seconds = driver.find_element(By.ID, "cap-seconds")
    seconds.clear()
    seconds.send_keys("15")
    driver.find_element(By.ID, "filter").click()  # "change" fires when the input loses focus
    link = wait_for("the pcap link to take the new count",
                    lambda: (a := driver.find_element(By.CSS_SELECTOR, f'a.pcap[data-port="{port}"]'))
                    and "count=8&seconds=15" in (a.get_attribute("href") or "") and a)
    href = link.get_attribute("href")
    link.click()
    time.sleep(0.7)  # the capture is attached when the request arrives
    subprocess.run(ping, check=True, stdout=subprocess.DEVNULL, timeout=30)
    files = wait_for("a finished .pcap download",
                     lambda: glob.glob(f"{out}/downloads/*.pcap")
                     and not glob.glob(f"{out}/downloads/*.crdownload")
                     and glob.glob(f"{out}/downloads/*.pcap"), timeout=25)
    return href, files[0]


def screenshot(driver, ping, path):
    """The whole page, while traffic flows (so the rates and the sparkline show it)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1440, max(900, min(int(height) + 120, 2400)))
    driver.execute_script("window.scrollTo(0, 0)")
    proc = subprocess.Popen(ping, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Two counter events into the ping, while it still runs.
        time.sleep(1.6)
        wait_for("traffic in the topology", lambda: driver.find_elements(By.CSS_SELECTOR, "#topology text.rate.hot"), timeout=5)
        driver.save_screenshot(path)
    finally:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--port", required=True, help="the port to watch, trace and capture")
    ap.add_argument("--network", action="append", default=[])
    ap.add_argument("--endpoint", action="append", default=[])
    ap.add_argument("--ping", required=True, help="a command that pings through --port")
    ap.add_argument("--link", action="append", default=[],
                    help="PORT=TEXT: the port's Link cell shows TEXT")
    a = ap.parse_args()
    ping = shlex.split(a.ping)
    os.makedirs(f"{a.out}/downloads", exist_ok=True)
    driver = browser(a.out)
    result = {}
    try:
        driver.get(a.url)
        result["title"] = driver.title
        result["topology"] = check_topology(driver, a.network, a.endpoint)
        wait_for("the live counters", lambda: "live" in driver.find_element(By.ID, "live-text").text)
        result["link"] = check_link_state(driver, a.link)
        before, after, peak = check_counters(driver, a.port, ping)
        result.update(rx_before=before, rx_after=after, rx_pps_peak=peak)
        result["capture_href"], result["pcap"] = check_capture(driver, a.port, ping, a.out)
        result["trace"] = check_trace(driver, a.port, ping)
        result["screenshot"] = f"{a.out}/web-view.png"
        screenshot(driver, ping, result["screenshot"])
        result["console"] = [e.get("message", "") for e in driver.get_log("browser")
                             if e.get("level") == "SEVERE"]
    except Exception:
        try:
            driver.save_screenshot(f"{a.out}/web-view-failed.png")
        except Exception:
            pass
        raise
    finally:
        driver.quit()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"web view check failed: {e}", file=sys.stderr)
        sys.exit(1)
