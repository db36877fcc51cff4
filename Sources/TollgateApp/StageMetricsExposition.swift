import TollgatePolicy

/// Renders the stages' own samples (``PolicyStage/metrics()``) in the Prometheus
/// text format, after the relay's registry: `tollgate_<plugin>_<name>` with the
/// label `stage="<plugin>"` and the sample's labels. One `# HELP`/`# TYPE` pair per
/// family (the first sample's help and kind; a later sample of the same name with
/// another kind is left out). Samples with a bad metric or label name, the label
/// `stage`, or a name the relay's own registry already uses (`reserved`: a plugin
/// called `smtp` exporting `messages_accepted_total`), are left out and named in
/// `rejected`.
enum StageMetricsExposition {
    struct Rendered {
        var text: String
        /// `plugin: name` of each sample left out.
        var rejected: [String]
    }

    static func render(_ stages: [(plugin: String, samples: [StageMetricSample])], reserved: Set<String> = []) -> Rendered {
        var families: [(name: String, help: String, kind: StageMetricKind, lines: [String])] = []
        var index: [String: Int] = [:]
        var rejected: [String] = []
        for (plugin, samples) in stages {
            let prefix = "tollgate_" + String(plugin.map { $0.isLetter || $0.isNumber ? $0 : "_" }) + "_"
            for sample in samples {
                guard isValidName(sample.name), sample.labels.keys.allSatisfy({ isValidName($0) && $0 != "stage" && !$0.hasPrefix("__") }) else {
                    rejected.append("\(plugin): \(sample.name)")
                    continue
                }
                let name = prefix + sample.name
                guard !reserved.contains(name) else {
                    rejected.append("\(plugin): \(sample.name)")
                    continue
                }
                let labels = [("stage", plugin)] + sample.labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
                let line = name + "{" + labels.map { "\($0.0)=\"\(escaped($0.1))\"" }.joined(separator: ",") + "} " + format(sample.value)
                if let at = index[name] {
                    guard families[at].kind == sample.kind else {
                        rejected.append("\(plugin): \(sample.name)")
                        continue
                    }
                    families[at].lines.append(line)
                } else {
                    index[name] = families.count
                    families.append((name, sample.help, sample.kind, [line]))
                }
            }
        }
        var text = ""
        for family in families {
            text += "# HELP \(family.name) \(family.help.replacingNewlines())\n# TYPE \(family.name) \(family.kind.rawValue)\n"
            for line in family.lines { text += line + "\n" }
        }
        return Rendered(text: text, rejected: rejected)
    }

    /// The metric families a text exposition declares (its `# TYPE` lines).
    static func families(in exposition: [UInt8]) -> Set<String> {
        var names: Set<String> = []
        for line in String(decoding: exposition, as: UTF8.self).split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let words = line.split(separator: " ")
            if words.count >= 3 { names.insert(String(words[2])) }
        }
        return names
    }

    private static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    /// A label value as the text format wants it: `\`, `"` and line feeds escaped.
    private static func escaped(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    private static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}

private extension String {
    func replacingNewlines() -> String {
        String(map { $0 == "\n" ? " " : $0 })
    }
}
