//! `berth network …`: create, ls, inspect, rm, prune, connect, disconnect.

use hyper::Method;
use serde_json::{json, Value};

use crate::client::Client;
use crate::{enc, table, with_filters, ListArgs, NetworkCmd, Outcome};

fn kv(items: &[String]) -> Value {
    Value::Object(
        items
            .iter()
            .map(|i| {
                let (k, v) = i.split_once('=').unwrap_or((i, ""));
                (k.to_string(), Value::from(v))
            })
            .collect(),
    )
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

pub async fn network(c: &Client, cmd: NetworkCmd) -> Outcome {
    match cmd {
        NetworkCmd::Create {
            driver,
            subnet,
            gateway,
            ip_range,
            internal,
            label,
            opt,
            name,
        } => {
            let mut ipam = json!({});
            for (k, v) in [
                ("Subnet", &subnet),
                ("Gateway", &gateway),
                ("IPRange", &ip_range),
            ] {
                if let Some(v) = v {
                    ipam[k] = v.clone().into();
                }
            }
            let body = json!({
                "Name": name,
                "Driver": driver.unwrap_or_else(|| "bridge".into()),
                "Internal": internal,
                "Labels": kv(&label),
                "Options": kv(&opt),
                "IPAM": {"Driver": "default", "Config": if ipam == json!({}) { json!([]) } else { json!([ipam]) }},
            });
            let r = c.post("/networks/create", Some(body)).await?;
            println!("{}", r["Id"].as_str().unwrap_or(""));
            Ok(0)
        }
        NetworkCmd::Ls(ListArgs {
            quiet,
            filter,
            format,
        }) => {
            let path = with_filters("/networks", &filter);
            let nets = c.get(&path).await?.as_array().cloned().unwrap_or_default();
            let rows: Vec<Value> = nets
                .iter()
                .map(|n| {
                    json!({
                        "ID": short(n["Id"].as_str().unwrap_or("")),
                        "Name": n["Name"], "Driver": n["Driver"], "Scope": n["Scope"],
                        "Internal": n["Internal"], "Labels": n["Labels"],
                    })
                })
                .collect();
            match (quiet, format) {
                (true, _) => rows
                    .iter()
                    .for_each(|r| println!("{}", r["ID"].as_str().unwrap_or(""))),
                (false, Some(f)) => {
                    let header = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE"});
                    table::print_format(&f, &header, &rows);
                }
                (false, None) => {
                    let cols = ["ID", "Name", "Driver", "Scope"];
                    let t: Vec<Vec<String>> = rows
                        .iter()
                        .map(|r| {
                            cols.iter()
                                .map(|k| r[*k].as_str().unwrap_or("").to_string())
                                .collect()
                        })
                        .collect();
                    table::print(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &t);
                }
            }
            Ok(0)
        }
        NetworkCmd::Inspect(args) => crate::inspect_each(c, "/networks", &args).await,
        NetworkCmd::Rm { networks } => {
            let mut failed = false;
            for n in &networks {
                if let Err(e) = c
                    .json(Method::DELETE, &format!("/networks/{}", enc(n)), None)
                    .await
                {
                    eprintln!("{e}");
                    failed = true;
                } else {
                    println!("{n}");
                }
            }
            Ok(failed as i32)
        }
        NetworkCmd::Prune { force } => {
            if !force {
                eprintln!("WARNING! This will remove all custom networks not used by at least one container. Use -f to confirm.");
                return Ok(1);
            }
            let r = c.post("/networks/prune", None).await?;
            let gone = r["NetworksDeleted"].as_array().cloned().unwrap_or_default();
            if !gone.is_empty() {
                println!("Deleted Networks:");
                gone.iter()
                    .for_each(|n| println!("{}", n.as_str().unwrap_or("")));
            }
            Ok(0)
        }
        NetworkCmd::Connect {
            alias,
            ip,
            network,
            container,
        } => {
            let mut ec = json!({"Aliases": alias});
            if let Some(ip) = ip {
                ec["IPAMConfig"] = json!({"IPv4Address": ip});
            }
            c.post(
                &format!("/networks/{}/connect", enc(&network)),
                Some(json!({"Container": container, "EndpointConfig": ec})),
            )
            .await?;
            Ok(0)
        }
        NetworkCmd::Disconnect { network, container } => {
            c.post(
                &format!("/networks/{}/disconnect", enc(&network)),
                Some(json!({"Container": container})),
            )
            .await?;
            Ok(0)
        }
    }
}
