// The public library: one import for everything a user of the network needs.
@_exported import InceptionCore
@_exported import InceptionFormats
@_exported import InceptionImages
@_exported import InceptionModels
