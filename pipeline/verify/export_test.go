package verify

// ChunkLines is chunkLines, for the external tests.
var ChunkLines = chunkLines
