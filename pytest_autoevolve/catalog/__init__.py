"""The scenario catalog: YAML files loaded, validated and expanded into `Scenario` records."""
