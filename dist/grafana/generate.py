#!/usr/bin/env python3
# Writes dist/grafana/tollgate.json (run from the repository root): the panels and
# their PromQL in one place. GrafanaDashboardLiveTests checks every metric name used.
import json
ds={"type":"prometheus","uid":"${datasource}"}
panels=[]
pid=[0]
def E(t, extra=""):
    """SEL: the instance selector (plus extra matchers); RI: the rate interval."""
    s='{instance=~"$instance"%s}' % ((","+extra) if extra else "")
    return t.replace("SEL", s).replace("RI", "[$__rate_interval]")
def panel(title, targets, x, y, w=12, h=8, unit="short", desc="", kind="timeseries", stack=False):
    pid[0]+=1
    p={"id":pid[0],"type":kind,"title":title,"description":desc,"datasource":ds,
       "gridPos":{"x":x,"y":y,"w":w,"h":h},
       "fieldConfig":{"defaults":{"unit":unit},"overrides":[]},
       "targets":[{"refId":chr(65+i),"datasource":ds,"expr":e,"legendFormat":l} for i,(e,l) in enumerate(targets)]}
    if kind=="timeseries":
        p["fieldConfig"]["defaults"]["custom"]={"stacking":{"mode":"normal" if stack else "none"}}
        p["options"]={"legend":{"displayMode":"table","placement":"bottom","calcs":["lastNotNull","max"]},"tooltip":{"mode":"multi"}}
    else:
        p["targets"][0]["format"]="table"; p["targets"][0]["instant"]=True
    panels.append(p)
panel("Throughput", [
  (E('sum(rate(tollgate_smtp_messages_accepted_totalSELRI))'),"accepted/s"),
  (E('sum(rate(tollgate_delivery_recipients_totalSELRI))','result="delivered"'),"delivered recipients/s"),
  (E('sum(rate(tollgate_delivery_recipients_totalSELRI))','result="bounced"'),"bounced recipients/s"),
], 0, 0, unit="ops", desc="Messages accepted and queued per second; recipients delivered and bounced per second.")
panel("Queue by state", [(E('sum by (state) (tollgate_queue_messagesSEL)'),"{{state}}")], 12, 0, stack=True, desc="Messages in the queue: queued, deferred, held.")
panel("Deferrals by upstream", [(E('sum by (upstream) (rate(tollgate_delivery_recipients_totalSELRI))','result="deferred"'),"{{upstream}}")], 0, 8, unit="ops", desc="Recipients deferred (a 4xx or a connection failure) per second, by upstream.")
panel("Delivery attempts by upstream and host", [(E('sum by (upstream, host, result) (rate(tollgate_delivery_attempts_totalSELRI))'),"{{upstream}} {{host}} {{result}}")], 12, 8, unit="ops", desc="Delivery attempts of a message per second.")
panel("Refusals by stage", [(E('sum by (stage, verdict) (rate(tollgate_policy_decisions_totalSELRI))','verdict=~"reject|defer|disconnect"'),"{{stage}} {{verdict}}")], 0, 16, unit="ops", desc="Policy decisions that refused (reject, defer, disconnect) per second, by stage.")
panel("Stage latency", [
  (E('histogram_quantile(0.99, sum by (stage, le) (rate(tollgate_policy_stage_duration_seconds_bucketSELRI)))'),"p99 {{stage}}"),
  (E('histogram_quantile(0.5, sum by (stage, le) (rate(tollgate_policy_stage_duration_seconds_bucketSELRI)))'),"p50 {{stage}}"),
  (E('sum by (stage) (rate(tollgate_policy_stage_duration_seconds_sumSELRI)) / sum by (stage) (rate(tollgate_policy_stage_duration_seconds_countSELRI))'),"mean {{stage}}"),
], 12, 16, unit="s", desc="Time a policy stage took to decide one phase (histogram quantiles).")
panel("Sessions and connections", [
  (E('sum by (listener) (tollgate_smtp_sessionsSEL)'),"open sessions {{listener}}"),
  (E('sum by (listener, result) (rate(tollgate_smtp_connections_totalSELRI))'),"connections/s {{listener}} {{result}}"),
], 0, 24, desc="Client sessions open now, and connections per second: accepted, refused_client, refused_limit.")
panel("TLS and AUTH failures", [
  (E('sum by (listener) (rate(tollgate_smtp_tls_handshakes_totalSELRI))','result="failure"'),"TLS handshake failures/s {{listener}}"),
  (E('sum by (listener, result) (rate(tollgate_smtp_auth_totalSELRI))','result!="success"'),"AUTH {{result}}/s {{listener}}"),
], 12, 24, unit="ops", desc="Failed TLS handshakes and failed AUTH attempts per second, by listener.")
panel("Shadow-mode verdicts", [(E('sum by (stage, verdict) (rate(tollgate_policy_shadow_decisions_totalSELRI))'),"{{stage}} {{verdict}}")], 0, 32, unit="ops", desc="What stages in mode: shadow would have decided (recorded, not applied).")
panel("Content memory", [
  (E('sum(tollgate_content_buffered_bytesSEL)'),"buffered"),
  (E('sum(tollgate_content_budget_bytesSEL)'),"budget (limits.content_memory)"),
], 12, 32, unit="bytes", desc="Message content sessions hold in memory, against limits.content_memory.")
panel("Spool write failures", [(E('sum(rate(tollgate_spool_write_failures_totalSELRI))'),"write failures/s")], 0, 40, unit="ops", desc="Messages that could not be stored (answered 4xx).")
panel("Bytes", [
  (E('sum by (listener) (rate(tollgate_smtp_message_bytes_totalSELRI))'),"accepted {{listener}}"),
  (E('sum by (upstream) (rate(tollgate_delivery_sent_bytes_totalSELRI))'),"delivered {{upstream}}"),
], 12, 40, unit="Bps", desc="Octets of messages accepted per listener and delivered per upstream.")
panel("LDAP cache hit rate", [
  (E('sum(rate(tollgate_ldap_cache_hits_totalSELRI)) / (sum(rate(tollgate_ldap_cache_hits_totalSELRI)) + sum(rate(tollgate_ldap_cache_misses_totalSELRI)))'),"hit rate"),
], 0, 48, unit="percentunit", desc="Share of ldap logins answered from the login cache (cache_ttl) rather than the directory. Needs the ldap stage (its metrics come from the plugin).")
panel("LDAP logins", [
  (E('sum(rate(tollgate_ldap_cache_hits_totalSELRI))'),"cache hits/s"),
  (E('sum(rate(tollgate_ldap_cache_misses_totalSELRI))'),"cache misses/s"),
  (E('sum by (result) (rate(tollgate_ldap_directory_results_totalSELRI))'),"directory {{result}}/s"),
  (E('sum by (kind) (tollgate_ldap_cache_entriesSEL)'),"entries {{kind}}"),
], 12, 48, unit="short", desc="ldap logins per second from the cache and from the directory (by its verdict), and the cache's entries.")
panel("Version", [(E('tollgate_build_infoSEL'),"{{instance}} {{version}} ABI {{abi}}")], 0, 56, w=24, h=4, kind="table", desc="The running version and plugin ABI of each instance.")
dash={
 "__inputs":[{"name":"DS_PROMETHEUS","label":"Prometheus","type":"datasource","pluginId":"prometheus","pluginName":"Prometheus"}],
 "title":"Tollgate","uid":"tollgate-relay","tags":["tollgate","smtp"],"timezone":"browser","schemaVersion":39,"version":1,
 "editable":True,"graphTooltip":1,"refresh":"30s","time":{"from":"now-6h","to":"now"},
 "templating":{"list":[
   {"name":"datasource","label":"Prometheus","type":"datasource","query":"prometheus","current":{},"hide":0,"refresh":1},
   {"name":"instance","label":"Instance","type":"query","datasource":ds,"query":{"query":"label_values(tollgate_build_info, instance)","refId":"instance"},"definition":"label_values(tollgate_build_info, instance)","includeAll":True,"multi":True,"allValue":".*","current":{"text":"All","value":"$__all"},"refresh":2,"hide":0,"sort":1}
 ]},
 "annotations":{"list":[]},
 "panels":panels}
with open("dist/grafana/tollgate.json","w") as f:
    json.dump(dash, f, indent=2); f.write("\n")
