//! The asset graph as SVG, laid out here rather than by a script: columns by depth (an asset
//! sits one column right of its deepest dependency), rows within a column ordered by the mean
//! row of their dependencies (one sweep of the barycentre heuristic, which untangles the usual
//! pipeline shapes), edges as curves from a dependency's right side to its reader's left,
//! labelled with the partition mapping when it is not the identity.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::html::{self, esc};

/// One asset to draw.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// The status that colours it (`success`, `failed`, `missing`, ...).
    pub status: String,
    /// Its dependencies, each with the mapping's description when not the identity.
    pub upstream: Vec<(String, Option<String>)>,
}

const NODE_W: f64 = 190.0;
const NODE_H: f64 = 44.0;
const COL_GAP: f64 = 110.0;
const ROW_GAP: f64 = 26.0;
const MARGIN: f64 = 20.0;

/// Where each node goes: (column, row).
pub fn layout(nodes: &[Node]) -> HashMap<&str, (usize, usize)> {
    let index: HashMap<&str, &Node> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    // Depth by memoised walk; `nodes` is acyclic (the registry checked it), and an edge to an
    // unknown name counts as a root.
    fn depth<'a>(
        name: &'a str,
        index: &HashMap<&'a str, &'a Node>,
        memo: &mut HashMap<&'a str, usize>,
    ) -> usize {
        if let Some(d) = memo.get(name) {
            return *d;
        }
        let d = index.get(name).map_or(0, |n| {
            n.upstream
                .iter()
                .filter(|(dep, _)| index.contains_key(dep.as_str()))
                .map(|(dep, _)| depth(dep, index, memo) + 1)
                .max()
                .unwrap_or(0)
        });
        memo.insert(name, d);
        d
    }
    let mut memo = HashMap::new();
    let mut columns: Vec<Vec<&str>> = Vec::new();
    for n in nodes {
        let d = depth(&n.name, &index, &mut memo);
        if columns.len() <= d {
            columns.resize(d + 1, Vec::new());
        }
        columns[d].push(&n.name);
    }
    let mut place: HashMap<&str, (usize, usize)> = HashMap::new();
    for (c, column) in columns.iter_mut().enumerate() {
        let key = |name: &str| -> f64 {
            let rows: Vec<f64> = index[name]
                .upstream
                .iter()
                .filter_map(|(dep, _)| place.get(dep.as_str()).map(|p| p.1 as f64))
                .collect();
            if rows.is_empty() {
                f64::MAX
            } else {
                rows.iter().sum::<f64>() / rows.len() as f64
            }
        };
        column.sort_by(|a, b| key(a).total_cmp(&key(b)).then_with(|| a.cmp(b)));
        for (r, name) in column.iter().enumerate() {
            place.insert(name, (c, r));
        }
    }
    place
}

fn origin((col, row): (usize, usize)) -> (f64, f64) {
    (
        MARGIN + col as f64 * (NODE_W + COL_GAP),
        MARGIN + row as f64 * (NODE_H + ROW_GAP),
    )
}

/// The SVG of `nodes`.
pub fn render(nodes: &[Node]) -> String {
    let place = layout(nodes);
    let cols = place.values().map(|p| p.0 + 1).max().unwrap_or(0);
    let rows = place.values().map(|p| p.1 + 1).max().unwrap_or(0);
    let width = 2.0 * MARGIN + cols as f64 * (NODE_W + COL_GAP) - COL_GAP;
    let height = 2.0 * MARGIN + rows as f64 * (NODE_H + ROW_GAP) - ROW_GAP;
    let mut edges = String::new();
    let mut boxes = String::new();
    for node in nodes {
        let (x, y) = origin(place[node.name.as_str()]);
        for (dep, label) in &node.upstream {
            let Some(from) = place.get(dep.as_str()) else {
                continue;
            };
            let (fx, fy) = origin(*from);
            let (x1, y1, x2, y2) = (fx + NODE_W, fy + NODE_H / 2.0, x, y + NODE_H / 2.0);
            let mid = (x1 + x2) / 2.0;
            let _ = write!(
                edges,
                "<path class=\"edge\" d=\"M{x1:.0},{y1:.0} C{mid:.0},{y1:.0} {mid:.0},{y2:.0} {x2:.0},{y2:.0}\" \
                 marker-end=\"url(#arrow)\"/>"
            );
            if let Some(label) = label {
                let _ = write!(
                    edges,
                    "<text class=\"edge-label\" x=\"{mid:.0}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text>",
                    (y1 + y2) / 2.0 - 4.0,
                    esc(label)
                );
            }
        }
        let _ = write!(
            boxes,
            "<a href=\"{}\" class=\"node\" data-asset=\"{}\"><rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{NODE_W}\" \
             height=\"{NODE_H}\" rx=\"6\" class=\"node-box status-{}\"/><text x=\"{:.0}\" y=\"{:.0}\" \
             text-anchor=\"middle\">{}</text><title>{} ({})</title></a>",
            esc(&html::asset_href(&node.name)),
            esc(&node.name),
            esc(&node.status),
            x + NODE_W / 2.0,
            y + NODE_H / 2.0 + 5.0,
            esc(&node.name),
            esc(&node.name),
            esc(&node.status)
        );
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"asset-graph\" width=\"{width:.0}\" \
         height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"asset graph\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" \
         markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>\
         {edges}{boxes}</svg>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, deps: &[&str]) -> Node {
        Node {
            name: name.into(),
            status: "success".into(),
            upstream: deps.iter().map(|d| ((*d).to_owned(), None)).collect(),
        }
    }

    #[test]
    fn columns_follow_the_deepest_dependency() {
        let nodes = vec![
            node("raw", &[]),
            node("clean", &["raw"]),
            node("stats", &["clean", "raw"]),
            node("other", &[]),
        ];
        let place = layout(&nodes);
        assert_eq!(place["raw"].0, 0);
        assert_eq!(place["other"].0, 0);
        assert_eq!(place["clean"].0, 1);
        assert_eq!(place["stats"].0, 2);
    }

    #[test]
    fn names_and_labels_are_escaped() {
        let mut n = node("b<x>", &["a"]);
        n.upstream[0].1 = Some("time window <&>".into());
        let svg = render(&[node("a", &[]), n]);
        assert!(svg.contains("b&lt;x&gt;"));
        assert!(svg.contains("time window &lt;&amp;&gt;"));
        assert!(!svg.contains("<x>"));
    }
}
