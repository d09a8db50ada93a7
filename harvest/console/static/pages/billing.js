// Usage and bills: a month's bill items and total in USD, daily amounts as bars, the per-SIM
// summary, and bundle use per SIM per day; previous months from a list.
import { control, get, operatorId } from "../api.js";
import { barChart } from "../chart.js";
import { count, h, section, table, usd } from "../dom.js";

/** "202611" for an instant in UTC (bills are per UTC month). */
export function yearMonth(ms) {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
}

/** Every day of a UTC month as "YYYYMMDD", with its UNIX seconds at 00:00 UTC. */
export function monthDays(ym) {
  const year = Number(ym.slice(0, 4));
  const month = Number(ym.slice(4)) - 1;
  const days = [];
  for (let d = new Date(Date.UTC(year, month, 1)); d.getUTCMonth() === month; d = new Date(d.getTime() + 86400000)) {
    days.push({ day: d.toISOString().slice(0, 10).replaceAll("-", ""), seconds: d.getTime() / 1000 });
  }
  return days;
}

async function orNull(promise) {
  try { return await promise; } catch (error) { if (error.status === 404) return null; throw error; }
}

export async function render(view, ctx) {
  const current = yearMonth(ctx.clockNow());
  const [closed, itemSummaries, simSummaries, sims] = await Promise.all([
    get("/bills"), get("/bills/summaries/bill_items"), get("/bills/summaries/sims"),
    control("GET", `/sims?operatorId=${encodeURIComponent(operatorId())}`),
  ]);
  const months = [...new Set([current, ...itemSummaries.map((s) => s.yearMonth), ...closed.billList.map((b) => b.yearMonth)])].sort().reverse();
  const choose = h("select", { id: "month" }, months.map((m) => h("option", { value: m }, `${m.slice(0, 4)}-${m.slice(4)}${m === current ? " (this month)" : ""}`)));
  const body = h("div");
  const imsiOf = new Map(sims.map((s) => [s.simId, s.imsi]));

  const draw = async (ym) => {
    const days = monthDays(ym);
    const [bill, daily, stats] = await Promise.all([
      orNull(get(`/bills/${ym}`)),
      orNull(get(`/bills/${ym}/daily`)),
      Promise.all(sims.map(async (s) => [s.imsi, await get(`/stats/harvest/subscribers/${s.imsi}`, {
        period: "day", from: days[0].seconds, to: days[days.length - 1].seconds + 86399,
      })])),
    ]);
    const items = (itemSummaries.find((s) => s.yearMonth === ym) || { costBreakdownList: [] }).costBreakdownList;
    const perSim = (simSummaries.find((s) => s.yearMonth === ym) || { costBreakdownList: [] }).costBreakdownList;
    const amounts = new Map(((daily && daily.billList) || []).map((b) => [b.date, b.amount]));
    const bars = h("div", { class: "chart", id: "daily-chart" });
    const use = [];
    for (const [imsi, buckets] of stats) {
      for (const b of buckets) {
        const writes = (b.harvestStatsMap.write || { count: 0 }).count;
        if (writes) use.push({ imsi, day: new Date(b.unixtime * 1000).toISOString().slice(0, 10), writes });
      }
    }
    body.replaceChildren(
      section("Bill",
        h("p", { class: "big", id: "bill-total" }, bill ? usd(bill.amount) : "0.00 USD",
          h("span", { class: "muted" }, bill ? ` (${bill.state || "closed"})` : " (no charges)")),
        table("Bill items", [
          { label: "Item", cell: (i) => i.billItemName },
          { label: "Amount", class: "num", cell: (i) => usd(i.amount) },
        ], items, "No bill items this month.")),
      section("Daily amounts", bars),
      section("Per SIM", table("Charges per SIM", [
        { label: "SIM", cell: (s) => { const imsi = imsiOf.get(s.simId); return imsi ? h("a", { href: `#/sims/${imsi}` }, imsi) : s.simId; } },
        { label: "Amount", class: "num", cell: (s) => usd(s.amount) },
      ], perSim, "No SIM was charged this month.")),
      section("Bundle use per SIM per day", table("Writes per SIM per UTC day (2,000 included each day)", [
        { label: "Day (UTC)", cell: (u) => u.day },
        { label: "SIM", cell: (u) => u.imsi },
        { label: "Writes", class: "num", cell: (u) => count(u.writes) },
        { label: "Past the bundle", class: "num", cell: (u) => count(Math.max(0, u.writes - 2000)) },
      ], use, "No writes this month.")),
    );
    barChart(bars, days.map((d) => ({ label: String(Number(d.day.slice(6))), value: amounts.get(d.day) || 0, title: `${d.day.slice(0, 4)}-${d.day.slice(4, 6)}-${d.day.slice(6)}: ${usd(amounts.get(d.day) || 0)}` })),
      { format: (v) => `${v}`, title: `Daily amounts in USD, ${ym}` });
  };
  choose.addEventListener("change", () => draw(choose.value));
  view.replaceChildren(
    h("h1", {}, "Usage and bills"),
    h("div", { class: "controls" }, h("label", { for: "month" }, "Month"), choose,
      h("span", { class: "muted" }, "Amounts in USD; months and days are UTC.")),
    body,
  );
  await draw(current);
}
