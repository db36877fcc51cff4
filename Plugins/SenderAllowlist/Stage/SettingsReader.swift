import TollgatePolicy

/// The plugin API's reader.
typealias SettingsReader = PolicySettingsReader

