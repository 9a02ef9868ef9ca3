//! `{{name}}` placeholders in fixture files. A placeholder alone on its line takes that
//! line's indentation for every line of its value (for PEM blocks and embedded configs in
//! YAML block scalars). A placeholder with no value is an error naming it.

use std::collections::BTreeMap;

pub type Vars = BTreeMap<String, String>;

pub fn render(name: &str, text: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let trimmed = body.trim_start();
        let indent = &body[..body.len() - trimmed.len()];
        if let Some(key) = trimmed.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")).map(str::trim)
            && !key.contains("{{")
        {
            let value = vars.get(key).ok_or_else(|| format!("{name} uses {{{{{key}}}}}, which has no value"))?;
            for v in value.lines() {
                out.push_str(indent);
                out.push_str(v);
                out.push('\n');
            }
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            let end = rest[start..].find("}}").ok_or_else(|| format!("{name}: unclosed {{{{ in `{}`", body.trim()))? + start;
            let key = rest[start + 2..end].trim();
            let value = vars.get(key).ok_or_else(|| format!("{name} uses {{{{{key}}}}}, which has no value"))?;
            out.push_str(&rest[..start]);
            out.push_str(value);
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn inline_and_block_placeholders() {
        let v = vars(&[("ip", "198.18.1.200"), ("pem", "-----BEGIN-----\nabc\n-----END-----")]);
        let out = render("t", "url: https://{{ip}}:5556\nca: |\n    {{pem}}\nend\n", &v).unwrap();
        assert_eq!(out, "url: https://198.18.1.200:5556\nca: |\n    -----BEGIN-----\n    abc\n    -----END-----\nend\n");
    }

    #[test]
    fn missing_values_are_named() {
        assert_eq!(render("f.yaml", "a: {{nope}}\n", &Vars::new()).unwrap_err(), "f.yaml uses {{nope}}, which has no value");
        assert!(render("f.yaml", "a: {{open\n", &Vars::new()).unwrap_err().contains("unclosed"));
    }
}
