@_exported import BackendChecks
